"""Batch accounting for the monitor: each ops.batches data file summed once, totals exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from advertisex.lake.upkeep import maintain
from advertisex.model.schemas import TABLES
from advertisex.monitor import queries
from advertisex.monitor.gather import Gatherer
from advertisex.synth.monitor_sim import SimClock
from advertisex.util import engine

NOW = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)


def commit_batch(ax: Any, n: int) -> None:
    schema = TABLES["ops.batches"].schema
    rows = []
    for source in ("impressions", "bids"):
        row = dict.fromkeys(schema.names)
        at = NOW - timedelta(minutes=7 * n)
        row |= {"batch_id": f"b{n}", "source": source, "started_at": at, "committed_at": at}
        row |= {"files": 1, "bytes": 100, "records_in": 10 + n, "accepted": 8, "quarantined": n}
        row |= {"filtered": 1, "duplicates": 1 - n % 2, "conflicts": 0, "segments": []}
        rows.append(row | {"new_fields": []})
    ax.lake.commit_batch({"ops.batches": pa.Table.from_pylist(rows, schema=schema)}, [], {})


def plainly(ax: Any, since: datetime) -> list[dict[str, Any]]:
    """The same sums straight from every current data file."""
    files = ax.lake.data_files("ops.batches")
    sums = ", ".join(f"sum({c}) AS {c}" for c in queries.BATCHES.names[2:])
    table = engine.run(
        f"""SELECT source, time_bucket(INTERVAL 5 MINUTE, committed_at) AS bucket, {sums}
        FROM read_parquet($files) WHERE committed_at >= $since GROUP BY ALL""",
        {"files": files, "since": since},
    )
    return ordered(table.cast(queries.BATCHES))


def ordered(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: (r["source"], r["bucket"]))


def test_each_batch_file_is_summed_once_and_compaction_changes_nothing(
    ax: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    real = queries.batch_sums
    monkeypatch.setattr(
        queries, "batch_sums", lambda paths, scale=None: read.extend(paths) or real(paths, scale)
    )
    gatherer = Gatherer(ax.settings, ax.lake, SimClock(NOW))
    assert gatherer.observe(hourly=False).batches.num_rows == 0  # no ops.batches yet
    for n in range(3):
        commit_batch(ax, n)
    since = NOW.replace(minute=0) - timedelta(days=ax.settings.monitor.lookback_days)
    assert ordered(gatherer.observe(hourly=False).batches) == plainly(ax, since)
    assert len(read) == 3
    for n in range(3, 6):
        commit_batch(ax, n)
    assert ordered(gatherer.observe(hourly=False).batches) == plainly(ax, since)
    assert len(read) == 6 == len(set(read))  # only the new files were read
    before = set(ax.lake.data_files("ops.batches"))
    maintain(ax.lake, tables=["ops.batches"])
    after = set(ax.lake.data_files("ops.batches"))
    assert after != before  # compacted into new files
    assert ordered(gatherer.observe(hourly=False).batches) == plainly(ax, since)
    assert len(read) == 6 + len(after - before)
