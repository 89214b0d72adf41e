"""The ledger read with sqlite3 (``lake.marks``, what ``status`` reads) answers as the
ledger does: marks a row each, folded days, a withdrawn mark's epoch, no catalog yet."""

from __future__ import annotations

from typing import Any

from advertisex.lake.marks import SqliteMarks
from tests.lake.test_ledger_fold import MARKS, NAMES

DAY = ("impressions/2026-01-01/", "impressions/2026-01-01/08/")
SPANNING = ("impressions/2026-01-01/09/", "impressions/2026-01-02/01/")
EVERY = ("impressions/", "impressions0")


def _read(reader: Any) -> dict[str, Any]:
    among = [NAMES[0], NAMES[3], NAMES[5], "clicks/2026-01-01/07/x.csv"]
    return {
        "epoch": reader.epoch(),
        "range": reader.table(between=SPANNING).sort_by("segment"),
        "all": reader.table(between=EVERY).sort_by("segment"),
        "among": reader.table(among=among).sort_by("segment"),
        "among in a range": reader.table(between=DAY, among=among).sort_by("segment"),
        "counts": [reader.count(r) for r in (DAY, SPANNING, EVERY)],
        "names": [reader.names(between=r) for r in (DAY, SPANNING, EVERY)],
        "any": reader.any(),
    }


def test_the_sqlite_reader_reads_what_the_ledger_reads(ax) -> None:
    catalog = ax.lake.catalog
    with catalog.atomic(MARKS):
        pass
    ledger, marks = catalog.ledger, ax.lake.ledger_reads
    assert isinstance(marks, SqliteMarks)
    assert _read(marks) == _read(ledger)
    assert _read(marks)["counts"] == [2, 2, 6]
    ledger.fold("impressions", "2026-01-01")
    ledger.fold("clicks", "2026-01-01")
    assert _read(marks) == _read(ledger)
    with catalog.atomic([], forget=[NAMES[1]]):  # a replay withdraws a mark: epoch 1
        pass
    assert _read(marks) == _read(ledger)
    assert marks.epoch() == 1


def test_no_catalog_yet_is_no_marks_and_none_is_made(tmp_path) -> None:
    database = tmp_path / "catalog.db"
    marks = SqliteMarks(str(database))
    assert marks.epoch() == 0
    assert marks.table(between=EVERY).num_rows == 0
    assert marks.count(EVERY) == 0
    assert marks.names(between=EVERY) == set() and not marks.any()
    assert not database.exists()
