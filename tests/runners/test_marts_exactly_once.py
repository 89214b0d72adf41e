"""Marts are exactly-once too: a processor SIGKILLed between a batch's commit and the marts
update leaves them behind, and the next run — even with nothing pending — or a follower at
its start brings them level: equal to a rebuild from the curated tables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advertisex.model.schemas import TABLES
from tests.table_snapshots import snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MARTS = sorted(name for name in TABLES if name.startswith("marts.") and name != "marts.state")
# `advertisex process`, SIGKILLed by itself the moment the marts update would begin: after
# the last batch's commit, before the marts know of it.
KILLED_BEFORE_MARTS = """
import os, signal, sys
from advertisex.runners import runner
runner.Runner.update_marts = lambda self, progress=None, replayed=None: os.kill(os.getpid(), signal.SIGKILL)
from advertisex.cli.app import main
sys.argv = ["advertisex", "process"]
main()
"""


def _env(data: Path) -> dict[str, str]:
    return dict(os.environ, ADVERTISEX_DATA_DIR=str(data), ADVERTISEX_CONFIG="")


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "advertisex.cli.app", *args],
        env=_env(data),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _killed_before_marts(data: Path) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_MARTS], env=_env(data), capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr


def _marts(data: Path) -> dict[str, list[dict[str, Any]]]:
    import advertisex

    return snapshot(advertisex.open(data_dir=data), MARTS)


def _rebuilt(data: Path) -> dict[str, list[dict[str, Any]]]:
    import advertisex

    advertisex.open(data_dir=data).refresh_marts(rebuild=True)
    return _marts(data)


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated traffic with clicks and conversions, ingested into a fresh lake."""
    base = tmp_path_factory.mktemp("marts-kill")
    drop, data = base / "drop", base / "data"
    generated = _cli(
        data, "generate", "--out", str(drop), "--events", "2000", "--seed", "3",
        "--start", "2026-11-20", "--days", "1",
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    assert _cli(data, "ingest", str(drop)).returncode == 0
    return data


def test_a_run_with_nothing_pending_brings_the_marts_level(landed: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    subprocess.run(["cp", "-a", str(landed), str(data)], check=True)
    _killed_before_marts(data)
    committed = _cli(
        data, "query", "select count(*) n from curated.impressions", "--format", "json"
    )
    assert '"n": 0' not in committed.stdout  # the batches are committed …
    assert _marts(data)["marts.campaign_daily"] == []  # … and the marts know nothing of them

    again = _cli(data, "process")
    assert again.returncode == 0, again.stderr
    said = " ".join((again.stdout + again.stderr).split())
    assert "nothing pending" in said and "up to date now" in said
    level = _marts(data)
    assert level["marts.campaign_daily"]  # the day's impressions are reported again
    assert level == _rebuilt(data)  # and exactly as a rebuild makes them: nothing twice


def test_a_follower_brings_the_marts_level_at_its_start(landed: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    subprocess.run(["cp", "-a", str(landed), str(data)], check=True)
    _killed_before_marts(data)
    follower = subprocess.Popen(
        [sys.executable, "-m", "advertisex.cli.app", "process", "--follow", "--format", "json"],
        env=_env(data),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        for line in follower.stdout:  # the first marts line: the catch-up at start
            if '"marts"' in line:
                break
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(60) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
    level = _marts(data)
    assert level["marts.campaign_daily"]
    assert level == _rebuilt(data)
