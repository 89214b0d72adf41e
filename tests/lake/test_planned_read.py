"""A planned read of every row of a table's files reads them as Parquet (lake/tables.py,
``PlannedRead``): the rows pyiceberg's scan gives, without its projection of each batch;
a file the scan must fill or name (a field added since, a nested field) goes to the scan."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.expressions import AlwaysTrue, GreaterThanOrEqual
from test_kept import CLICKS, FIELDS, _clicks, _committed

from advertisex.config import load_settings
from advertisex.lake.tables import Lake, PlannedRead
from advertisex.model.schemas import TABLES

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


def test_a_filtered_read_goes_through_the_scan(lake: Lake) -> None:
    _committed(lake, _clicks(24, day=10))
    since = GreaterThanOrEqual("event_time", "2026-11-10T12:00:00+00:00")  # type: ignore[call-arg,misc]
    planned = lake.read_planned(CLICKS, since, FIELDS)
    assert planned.direct is None
    assert len(_rows(planned.batches())) == 12


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
