"""A planned read of every row of a table's files reads them as Parquet (lake/tables.py,
``PlannedRead``): the rows pyiceberg's scan gives, without its projection of each batch;
a file the scan must fill or name (a field added since, a nested field) goes to the scan."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.expressions import AlwaysTrue, And, GreaterThanOrEqual, LessThan, Or
from test_kept import CLICKS, FIELDS, _clicks, _committed

from advertisex.config import load_settings
from advertisex.lake.tables import Lake, PlannedRead
from advertisex.model.schemas import TABLES
from advertisex.util.timeutil import from_micros

pytestmark = pytest.mark.integration


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(load_settings(data_dir=tmp_path / "data"))


def _rows(batches: Any) -> list[dict[str, Any]]:
    schema = TABLES[CLICKS].projected(FIELDS)
    return [
        row
        for batch in batches
        for row in pa.Table.from_batches([batch]).select(list(FIELDS)).cast(schema).to_pylist()
    ]


def test_every_row_of_the_files_is_read_as_parquet_and_equals_the_scan(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    _committed(lake, pa.concat_tables([_clicks(30, day=10), _clicks(20, day=11, first=30)]))
    _committed(lake, _clicks(25, day=12, first=50))
    scanned = _rows(lake.read_planned(CLICKS, AlwaysTrue(), FIELDS).batches())
    direct = lake.read_planned(CLICKS, AlwaysTrue(), FIELDS)

    def no_scan(task: Any) -> Any:
        raise AssertionError("read through pyiceberg's scan")

    monkeypatch.setattr(direct, "_scanned", no_scan)
    assert len(scanned) == 75
    assert _rows(direct.batches()) == scanned  # the same rows, in the same order


@pytest.mark.parametrize("row_group_rows", [None, 5], ids=["one-row-group", "row-groups"])
def test_a_filtered_read_is_read_as_parquet_and_equals_the_scan(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, row_group_rows: int | None
) -> None:
    """A read of some of the files' rows (a marts update's hours) sifts them as Parquet by
    the scan's filter, as an Arrow expression — a file of one row group read and filtered,
    one of several through Arrow's scanner (which skips row groups by their statistics)."""
    if row_group_rows is not None:
        real = pq.ParquetWriter.write_table
        monkeypatch.setattr(
            pq.ParquetWriter,
            "write_table",
            lambda self, rows, row_group_size=None: real(self, rows, row_group_rows),
        )
    _committed(lake, pa.concat_tables([_clicks(24, day=10), _clicks(6, day=11, first=24)]))
    monkeypatch.undo()
    since = GreaterThanOrEqual("event_time", "2026-11-10T12:00:00+00:00")  # type: ignore[call-arg,misc]
    narrow = ("event_id", "user_id")  # the filter's column is not among those read
    for fields in (FIELDS, narrow):
        sifted = lake.read_planned(CLICKS, since, fields)
        assert sifted.sieve is not None and not sifted.whole
        groups = max(
            pq.ParquetFile(f.file_path.removeprefix("file://")).num_row_groups for f in sifted.files
        )
        assert (groups > 1) is (row_group_rows is not None)
        scanned = lake.read_planned(CLICKS, since, fields)
        scanned.sieve = scanned.direct = None  # pyiceberg's scan, as before
        expected = sorted(scanned.table().to_pylist(), key=repr)

        def no_scan(task: Any) -> Any:
            raise AssertionError("read through pyiceberg's scan")

        monkeypatch.setattr(sifted, "_scanned", no_scan)
        monkeypatch.setattr(sifted._reader, "to_table", no_scan)
        rows = [r for b in sifted.batches() for r in pa.Table.from_batches([b]).to_pylist()]
        assert len(expected) == 18
        assert sorted(rows, key=repr) == expected
        assert sorted(sifted.table().to_pylist(), key=repr) == expected
    # A file whose bounds meet the filter but none of whose rows pass it: no rows.
    between = And(
        GreaterThanOrEqual("event_time", "2026-11-10T12:10:00+00:00"),  # type: ignore[call-arg,misc]
        LessThan("event_time", "2026-11-10T12:20:00+00:00"),  # type: ignore[call-arg,misc]
    )
    nothing = lake.read_planned(CLICKS, between, FIELDS)
    assert nothing.sieve is not None and nothing.files
    assert nothing.table().num_rows == 0 and list(nothing.batches()) == []


def test_a_file_without_a_field_or_with_it_nested_is_left_to_the_scan(tmp_path: Path) -> None:
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"event_id": ["a"], "tags": pa.array([["x"]])}), path)
    task = SimpleNamespace(file=SimpleNamespace(file_path=str(path)))
    planned = PlannedRead(CLICKS, 1, None, [task])
    for fields, readable in (
        (("event_id",), True),
        (("event_id", "user_id"), False),  # added to the table after this file was written
        (("event_id", "tags"), False),  # nested: the scan names its parts
    ):
        planned.direct = (fields, None)
        batches = planned._read_as_parquet(task)
        assert (batches is not None) is readable, fields
        if batches is not None:
            assert [b.to_pylist() for b in batches] == [[{"event_id": "a"}]]


def test_time_range_reads_of_one_version_plan_its_days_once(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A marts update reads each curated table two to four times for one version of it;
    each read planned the table anew (pyiceberg weighs every manifest entry: ≈ 80 ms a
    table of a live lake's micro-batch files). ``read_within`` plans a span of days once
    per version and picks each read's files by their bounds: the rows of the scan."""
    from pyiceberg.table import DataScan

    from advertisex.util.timeutil import to_micros

    for day in (10, 11, 12):
        _committed(lake, _clicks(24, day=day, first=100 * day))
    plans = []
    real = DataScan.plan_files
    monkeypatch.setattr(DataScan, "plan_files", lambda self: plans.append(1) or real(self))

    def at(day: int, hour: int = 0) -> int:
        return to_micros(datetime(2026, 11, day, hour, tzinfo=UTC))

    wide = [(at(10, 12), at(12, 6))]
    narrow = [(at(11, 3), at(11, 5)), (at(12, 1), at(12, 2))]
    for within in (wide, narrow, [(at(11), at(11, 1))]):
        got = lake.read_within(CLICKS, within, FIELDS).table().select(list(FIELDS))
        clauses = [
            And(
                GreaterThanOrEqual("event_time", from_micros(lo).isoformat()),  # type: ignore[call-arg,misc]
                LessThan("event_time", from_micros(hi).isoformat()),  # type: ignore[call-arg,misc]
            )
            for lo, hi in within
        ]
        wanted = clauses[0] if len(clauses) == 1 else Or(*clauses)
        scanned = lake.read(CLICKS, wanted, FIELDS).select(list(FIELDS))
        order = [("event_id", "ascending")]
        assert got.sort_by(order).to_pylist() == scanned.sort_by(order).to_pylist()
        assert got.num_rows
    assert len(plans) == 1 + 3  # the wide read's days once; each pyiceberg scan its own
    # A read of whole days' files (a slice of some users) picks them from that plan too.
    on_day = lake.read_on_days(CLICKS, {datetime(2026, 11, 11).date()}, FIELDS).table()
    assert sorted(on_day.column("event_id").to_pylist()) == [f"clk-{1100 + k}" for k in range(24)]
    assert len(plans) == 4
    # A new version of the table is planned again.
    _committed(lake, _clicks(5, day=11, first=5000))  # hours 0-4: two of them in ``narrow``
    assert lake.read_within(CLICKS, narrow, FIELDS).table().num_rows == 3 + 2
    assert len(plans) == 5
