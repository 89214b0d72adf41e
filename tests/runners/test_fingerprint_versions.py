"""A lake written with version-1 payload hashes (MD5, before kernels.fingerprint's XXH3)
keeps deduping after the change: retries are duplicates, changed payloads conflicts,
id-less records keep their fingerprint ids."""

from __future__ import annotations

import pyarrow as pa
import pytest

import advertisex
from advertisex.kernels import fingerprint, standardize

pytestmark = pytest.mark.integration

IMPRESSION = (
    '{{"impression_id": "{id}", "timestamp": "2026-11-20T10:00:0{s}Z", "ad_creative_id": "cr-1", '
    '"user_id": "u-{id}", "website": "example.com", "cost": {cost}}}\n'
)
CLICKS_HEADER = "timestamp,user_id,campaign_id,event_type\n"


def _impressions(*rows: tuple[str, int, float]) -> bytes:
    return "".join(IMPRESSION.format(id=i, s=s, cost=c) for i, s, c in rows).encode()


def _clicks(*users: str) -> bytes:
    return (
        CLICKS_HEADER + "".join(f"2026-11-20T10:05:00Z,{u},cmp-1,click\n" for u in users)
    ).encode()


def _hashes(ax, table: str) -> dict[str, str]:
    key = "impression_id" if table == "impressions" else "event_id"
    rows = ax.query(f"select {key} as k, payload_hash as h from curated.{table}").to_pylist()
    return {r["k"]: r["h"] for r in rows}


def test_a_lake_written_with_version_1_hashes_keeps_deduping(tmp_path, monkeypatch):
    ax = advertisex.open(
        data_dir=tmp_path / "data",
        processor={"ivt_filter": False},
        correlation={"update_marts": False},
    )
    # The lake as the previous version wrote it: every payload hash the MD5 one.
    with monkeypatch.context() as old:
        old.setattr(standardize, "payload_hash", fingerprint.legacy_hash)
        ax.landing.write_segment(
            "impressions", _impressions(("a", 1, 1.0), ("b", 2, 1.0)), fsync=False
        )
        ax.landing.write_segment("clicks", _clicks("u-1", "u-2"), fsync=False)
        ax.process()
    before = _hashes(ax, "impressions") | _hashes(ax, "clicks")
    assert len(before) == 4 and all(
        fingerprint.is_legacy(pa.array(list(before.values()))).to_pylist()
    )

    # The same lake now: a retry of a, a changed b, a new c; the same id-less click again.
    ax.landing.write_segment(
        "impressions", _impressions(("a", 1, 1.0), ("b", 2, 9.0), ("c", 3, 1.0)), fsync=False
    )
    ax.landing.write_segment("clicks", _clicks("u-1", "u-3"), fsync=False)
    report = ax.process()
    impressions, clicks = report.accounts["impressions"], report.accounts["clicks"]
    assert (impressions.accepted, impressions.duplicates, impressions.conflicts) == (1, 2, 1)
    assert (clicks.accepted, clicks.duplicates, clicks.conflicts) == (1, 1, 0)
    after = _hashes(ax, "impressions") | _hashes(ax, "clicks")
    new = {k: h for k, h in after.items() if k not in before}
    assert len(new) == 2 and all(h.startswith(fingerprint.VERSION_2) for h in new.values())
    assert {k: after[k] for k in before} == before  # nothing committed twice or rewritten
