"""A lake written with version-1 payload hashes (MD5, before kernels.fingerprint's XXH3)
keeps deduping after the change: retries are duplicates, changed payloads conflicts,
id-less records keep their fingerprint ids."""

from __future__ import annotations

import pyarrow as pa
import pytest

import advertisex
from advertisex.kernels import fingerprint
from tests.version_1_lake import land_repeats, write_version_1_lake

pytestmark = pytest.mark.integration


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
    write_version_1_lake(ax, monkeypatch)  # the lake as the previous version wrote it
    before = _hashes(ax, "impressions") | _hashes(ax, "clicks")
    assert len(before) == 4 and all(
        fingerprint.is_legacy(pa.array(list(before.values()))).to_pylist()
    )

    land_repeats(ax)  # the same lake now
    report = ax.process()
    impressions, clicks = report.accounts["impressions"], report.accounts["clicks"]
    assert (impressions.accepted, impressions.duplicates, impressions.conflicts) == (1, 2, 1)
    assert (clicks.accepted, clicks.duplicates, clicks.conflicts) == (1, 1, 0)
    after = _hashes(ax, "impressions") | _hashes(ax, "clicks")
    new = {k: h for k, h in after.items() if k not in before}
    assert len(new) == 2 and all(h.startswith(fingerprint.VERSION_2) for h in new.values())
    assert {k: after[k] for k in before} == before  # nothing committed twice or rewritten
