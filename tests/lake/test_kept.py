"""Rows a lake wrote, kept in memory for the read right after their commit (lake/kept.py):
read as the files read, never instead of files it did not keep, bounded in memory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.expressions import AlwaysTrue, GreaterThanOrEqual

from advertisex.config import load_settings
from advertisex.lake.kept import KeptRows
from advertisex.lake.tables import Lake
from advertisex.model.schemas import TABLES

pytestmark = pytest.mark.integration

CLICKS = "curated.clicks"
FIELDS = ("event_id", "event_time", "user_id", "campaign_id", "ad_creative_id")


def _clicks(n: int, day: int = 10, first: int = 0) -> pa.Table:
    rows = [
        {
            "event_id": f"clk-{first + k}",
            "event_time": datetime(2026, 11, day, k % 24, tzinfo=UTC),
            "user_id": f"u{k % 7}",
            "campaign_id": f"cmp-{k % 3}",
            "ad_creative_id": None if k % 5 == 0 else f"ad-{k % 4}",
        }
        for k in range(n)
    ]
    schema = TABLES[CLICKS].schema
    table = pa.Table.from_pylist(rows, schema=pa.schema([schema.field(f) for f in FIELDS]))
    filled = {  # the other columns the table requires
        "payload_hash": pa.array([f"h{k}" for k in range(n)]),
        "ingest_time": pa.array(
            [datetime(2026, 11, 12, tzinfo=UTC)] * n, schema.field("ingest_time").type
        ),
        "source_file": pa.array(["clicks/file.csv"] * n),
        "source_position": pa.array(range(1, n + 1), pa.int64()),
        "batch_id": pa.array(["batch"] * n),
    }
    full = {
        f.name: table.column(f.name)
        if f.name in FIELDS
        else filled.get(f.name, pa.nulls(n, f.type))
        for f in schema
    }
    # Few-valued columns handed to the writer dictionary-encoded, as the runners do.
    return pa.table(full).cast(TABLES[CLICKS].written_schema())


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(load_settings(data_dir=tmp_path / "data"))


def _committed(lake: Lake, rows: pa.Table) -> list[str]:
    written = lake.write_files({CLICKS: rows}, "batch")
    urls = [f.url for f in written[CLICKS]]
    lake.commit_files({CLICKS: urls}, [], {})
    return urls


def _from_files(lake: Lake, fields: tuple[str, ...] = FIELDS) -> pa.Table:
    planned = lake.read_planned(CLICKS, AlwaysTrue(), fields)
    planned.kept = lambda: None  # read through pyiceberg's scan, whatever was kept
    return planned.table()


def test_a_whole_read_of_the_files_written_takes_their_rows_from_memory(
    lake: Lake, monkeypatch: Any
) -> None:
    lake.keep_written({CLICKS: FIELDS}, budget_bytes=1 << 20)
    urls = _committed(lake, pa.concat_tables([_clicks(30, day=10), _clicks(20, day=11, first=30)]))
    assert len(urls) == 2  # a file a day
    from_files = _from_files(lake)
    from_memory = lake.read_planned(CLICKS, AlwaysTrue(), FIELDS)

    def no_scan(*args: Any) -> Any:
        raise AssertionError("the files were decoded again")

    monkeypatch.setattr(from_memory._reader, "to_table", no_scan)
    rows = from_memory.table()
    assert rows.schema == from_files.schema  # the table's own types, the text decoded
    assert rows.to_pylist() == from_files.to_pylist()  # the same rows in the same order
    assert lake.written(CLICKS, list(reversed(urls)), ["event_id"]) is not None


def test_reads_it_cannot_answer_go_to_the_files(lake: Lake) -> None:
    lake.keep_written({CLICKS: FIELDS[:3]}, budget_bytes=1 << 20)
    kept = _committed(lake, _clicks(10))
    since = GreaterThanOrEqual("event_time", "2026-11-10T05:00:00+00:00")  # type: ignore[call-arg,misc]
    filtered = lake.read_planned(CLICKS, since, FIELDS[:3])
    assert filtered.kept() is None  # a row filter: pyiceberg's scan applies it
    assert lake.written(CLICKS, kept, FIELDS) is None  # a field that was not kept
    lake.forget_written()
    _committed(lake, _clicks(5, first=10))  # written while nothing is kept
    assert lake.read_planned(CLICKS, AlwaysTrue(), FIELDS[:3]).kept() is None
    assert lake.written(CLICKS, kept, FIELDS[:3]) is None  # let go
    assert _from_files(lake, FIELDS[:1]).num_rows == 15


def test_files_removed_before_their_commit_are_let_go(lake: Lake) -> None:
    lake.keep_written({CLICKS: FIELDS}, budget_bytes=1 << 20)
    written = lake.write_files({CLICKS: _clicks(10)}, "batch")
    urls = [f.url for f in written[CLICKS]]
    assert lake.written(CLICKS, urls, FIELDS) is not None
    lake.remove_files({CLICKS: urls})
    assert lake.written(CLICKS, urls, FIELDS) is None


def test_past_its_budget_nothing_is_kept_any_more() -> None:
    one = _clicks(100).select(list(FIELDS))
    kept = KeptRows({CLICKS: FIELDS}, budget_bytes=int(one.nbytes * 2.5))
    kept.add(CLICKS, "a", one)
    kept.add(CLICKS, "b", one)
    assert kept.rows(CLICKS, ["a", "b"], FIELDS) is not None
    kept.add(CLICKS, "c", one)  # past the budget: everything goes
    assert kept.rows(CLICKS, ["a"], FIELDS) is None
    kept.drop(["a"])
    kept.add(CLICKS, "d", one.slice(0, 1))  # and nothing is kept again
    assert kept.rows(CLICKS, ["d"], FIELDS) is None
    assert not kept.wanted(CLICKS)


def test_only_the_tables_and_columns_asked_for_are_kept() -> None:
    kept = KeptRows({CLICKS: ("event_id",)}, budget_bytes=1 << 20)
    kept.add("curated.conversions", "x", pa.table({"event_id": ["e"]}))
    kept.add(CLICKS, "y", _clicks(3))
    assert kept.rows("curated.conversions", ["x"], ["event_id"]) is None
    held = kept.rows(CLICKS, ["y"], ["event_id"])
    assert held is not None and held.column_names == ["event_id"]
    assert kept.rows(CLICKS, [], ["event_id"]) is None


def test_rows_settled_beside_are_read_as_they_would_be_without_decoding_them_again(
    monkeypatch: Any,
) -> None:
    """The kept rows decoded into the table's types on a thread (beside a batch's commit):
    a read waits for it, then takes them as they are — the same rows, in the same types —
    and what would pass the budget stays as kept, decoded by the read."""
    import time

    rows = _clicks(40)
    read_types = TABLES[CLICKS].projected(FIELDS)
    kept = KeptRows({CLICKS: FIELDS}, budget_bytes=1 << 20)
    kept.add(CLICKS, "a", rows.slice(0, 20))
    kept.add(CLICKS, "b", rows.slice(20))
    before = kept.rows(CLICKS, ["a", "b"], FIELDS)
    assert before is not None and before.schema == read_types
    assert kept._rows["a"].schema != read_types  # kept dictionary-coded, as written

    settle = KeptRows.settle

    def slow_settle(self: KeptRows) -> None:
        time.sleep(0.3)  # the read below comes while this runs
        settle(self)

    monkeypatch.setattr(KeptRows, "settle", slow_settle)
    started = time.perf_counter()
    kept.settle_beside()
    after = kept.rows(CLICKS, ["a", "b"], FIELDS)
    assert time.perf_counter() - started >= 0.25  # it waited for the settling
    assert after is not None and after.equals(before)
    assert kept._rows["a"].schema == kept._rows["b"].schema == read_types  # nothing to decode

    small = KeptRows({CLICKS: FIELDS}, budget_bytes=rows.select(list(FIELDS)).nbytes + 8)
    small.add(CLICKS, "a", rows)
    settle(small)  # decoded, it would pass the budget: left as kept
    assert small._rows["a"].schema != read_types
    assert small.rows(CLICKS, ["a"], FIELDS).equals(before)  # type: ignore[union-attr]


SETTLED_AT_EXIT = """
import sys, time
from pathlib import Path
from advertisex.lake.kept import KeptRows

def settle(self):
    time.sleep(0.5)  # still decoding when the script ends
    Path(sys.argv[1]).write_text("settled")

KeptRows.settle = settle
KeptRows({}, budget_bytes=1).settle_beside()
"""


def test_a_process_ending_while_rows_settle_waits_for_them(tmp_path: Path) -> None:
    """The settling thread was a daemon: a process ending meanwhile (a commit that failed
    for good, then the CLI's exit) finalized while it was inside Arrow. It is waited for."""
    import subprocess
    import sys

    marker = tmp_path / "settled"
    done = subprocess.run(
        [sys.executable, "-c", SETTLED_AT_EXIT, str(marker)], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    assert marker.read_text() == "settled"


def test_a_read_through_a_time_slice_sifts_the_kept_rows_and_decodes_only_the_others(
    lake: Lake, monkeypatch: Any
) -> None:
    """A marts update after a batch reads the hours it recomputes (``Lake.read_within``):
    the batch's files come from the rows kept of them, the slice picked in memory; files
    written before (not kept) are read as before; the rows are those the files give."""
    from advertisex.lake.tables import PlannedRead
    from advertisex.util.timeutil import to_micros

    older = _committed(lake, _clicks(12, day=10, first=100))  # nothing kept yet
    lake.keep_written({CLICKS: FIELDS}, budget_bytes=1 << 20)
    days = [_clicks(30, day=10), _clicks(20, day=11, first=30), _clicks(6, day=12, first=60)]
    _committed(lake, pa.concat_tables(days))
    within = [
        (to_micros(datetime(2026, 11, 10, 5, tzinfo=UTC)), to_micros(datetime(2026, 11, 10, 9, tzinfo=UTC))),
        (to_micros(datetime(2026, 11, 11, 2, tzinfo=UTC)), to_micros(datetime(2026, 11, 11, 4, tzinfo=UTC))),
        (to_micros(datetime(2026, 11, 12, tzinfo=UTC)), to_micros(datetime(2026, 11, 13, tzinfo=UTC))),
    ]  # fmt: skip
    decoded: list[str] = []
    opened, inside = PlannedRead._parquet_of, PlannedRead._all_within
    whole: list[bool] = []

    def watched(self: PlannedRead, task: Any) -> Any:
        decoded.append(task.file.file_path)
        return opened(self, task)

    def all_within(self: PlannedRead, rows: pa.Table) -> bool:
        whole.append(inside(self, rows))
        return whole[-1]

    monkeypatch.setattr(PlannedRead, "_parquet_of", watched)
    monkeypatch.setattr(PlannedRead, "_all_within", all_within)
    from_memory = lake.read_within(CLICKS, within, FIELDS).table()
    assert decoded == older  # the one file not kept
    assert sorted(whole) == [False, False, True]  # the third day's is taken as it was kept
    batches = list(lake.read_within(CLICKS, within, FIELDS).batches())
    lake.forget_written()
    from_files = lake.read_within(CLICKS, within, FIELDS).table()
    expected = sorted(from_files.to_pylist(), key=lambda row: row["event_id"])
    assert len(expected) == 4 + 5 + 2 + 6  # the older file's, then each day's of the batch
    assert sorted(from_memory.to_pylist(), key=lambda row: row["event_id"]) == expected
    streamed = pa.Table.from_batches(batches).to_pylist()
    assert sorted(streamed, key=lambda row: row["event_id"]) == expected


def test_a_read_through_thousands_of_time_ranges_plans_them_as_a_balanced_filter(
    lake: Lake,
) -> None:
    """A marts update can read thousands of scattered ranges (a late trickle's hours over
    months): chained one ``Or`` after another, pyiceberg's visitors recursed once per range,
    past Python's limit at ≈ 1,000; joined as a balanced tree they read the rows inside
    them. (Arrow's own canonical form of the sieve still chains them: ≈ 10,000 ranges
    overflowed its stack in C++, far past any lake's hours.)"""
    from advertisex.util.timeutil import to_micros

    _committed(lake, _clicks(24, day=10))  # one click an hour, on the hour
    hour = 3_600_000_000
    start = to_micros(datetime(2026, 11, 10, tzinfo=UTC))
    # Every even hour's first 0.2 s, each cut into 200 ranges of a millisecond: 2,400.
    within = [
        (start + h * hour + k * 1000, start + h * hour + (k + 1) * 1000)
        for h in range(0, 24, 2)
        for k in range(200)
    ]
    rows = lake.read_within(CLICKS, within, FIELDS).table()
    assert sorted(t.hour for t in rows.column("event_time").to_pylist()) == list(range(0, 24, 2))
