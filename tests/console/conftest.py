"""A small generated lake for the console tests, built once, with hostile quarantined records.

Three producer mistakes land in ``curated.quarantine`` with attacker-chosen raw text: a
``<script>`` line that is not JSON, an impression without ``user_id`` whose fields break
out of an HTML attribute, and one whose text carries right-to-left overrides and
zero-width characters. Every page must show them as text.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from advertisex.util import jsonutil
from tests.cli_fixtures import cli

__all__ = ["cli"]

START = date(2026, 11, 20)
SCRIPT = '<script>alert("owned")</script>'
BREAKOUT = '"><img src=x onerror=alert(1)>'
BIDI = "\u202egnp.exe\u200b\u200d\u2066evil\u2069"
FUTURE_ID = "imp-from-2099"


def hostile_lines() -> list[bytes]:
    at = datetime(2026, 11, 20, 10, tzinfo=UTC).isoformat()
    missing_user = {
        "timestamp": at,
        "ad_creative_id": "cr-1",
        "campaign_id": "cmp-001",
        "website": BREAKOUT,
        "impression_id": SCRIPT,
    }
    bidi = {
        "timestamp": "not a time " + BIDI,
        "ad_creative_id": BIDI,
        "user_id": "u-1",
        "website": "w",
    }
    future = {  # fixable: passes once the future-skew bound is widened
        "timestamp": "2099-01-01T00:00:00Z",
        "ad_creative_id": "cr-1",
        "user_id": "u-future",
        "website": "w",
        "impression_id": FUTURE_ID,
    }
    return [
        SCRIPT.encode(),
        jsonutil.dumps(missing_user),
        jsonutil.dumps(bidi),
        jsonutil.dumps(future),
    ]


@pytest.fixture(scope="session")
def lake_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the lake once: two days of traffic with the demo's faults, marts included."""
    import advertisex
    from advertisex.synth import FaultConfig, generate

    base = tmp_path_factory.mktemp("console-lake")
    generate(base / "in", events=3_000, seed=11, start=START, days=2, faults=FaultConfig.demo())
    hostile = base / "in" / "hostile" / "impressions-hostile.ndjson"
    hostile.parent.mkdir(parents=True)
    hostile.write_bytes(b"\n".join(hostile_lines()) + b"\n")
    ax = advertisex.open(data_dir=base / "data")
    ax.ingest([str(base / "in" / s) for s in ("impressions", "clicks", "bids")])
    ax.ingest([str(hostile)], source="impressions")
    ax.process()
    return base / "data"


@pytest.fixture
def lake_copy(lake_template: Path, tmp_path: Path) -> Callable[[], Path]:
    """A private copy of the lake, for tests that change it (replay): copied, then
    relocated, so that what they write lands in the copy, not in the template's folders."""
    import advertisex

    def copy() -> Path:
        target = tmp_path / "data"
        shutil.copytree(lake_template, target)
        advertisex.open(data_dir=target).relocate()
        return target

    return copy


@pytest.fixture
def make_client() -> Callable[..., Any]:
    """``make_client(data_dir, bind_host="127.0.0.1", **settings)``: a TestClient of the console."""
    import warnings

    import advertisex
    from advertisex.console.app import create_app

    def make(data_dir: Path, bind_host: str = "127.0.0.1", **overrides: Any) -> Any:
        ax = advertisex.open(data_dir=data_dir, **overrides)
        app = create_app(lambda: ax, ax.settings, bind_host)
        with warnings.catch_warnings():  # Starlette 1.x would rather see httpx2; httpx works
            warnings.simplefilter("ignore")
            from starlette.testclient import TestClient

            return TestClient(app, base_url="http://127.0.0.1:8080")

    return make
