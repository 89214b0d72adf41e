"""The done marks of landing days retention deleted are folded into a row a day: every
reader of the ledger sees the same marks as before, in a fraction of the room, and a
segment of a folded day copied back from the archive is done, and replays."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from advertisex.errors import CommitConflictError
from advertisex.lake.catalog import SEGMENTS, SegmentDone, SegmentLedger
from advertisex.lake.marks import SqliteMarks
from advertisex.util.timeutil import parse_date
from tests.table_snapshots import snapshot


def _mark(name: str, batch: str, records: int = 3) -> SegmentDone:
    return SegmentDone(
        name, name.split("/")[0], batch, records, 100 * records, "2026-01-03T00:00:00+00:00"
    )


MARKS = [
    _mark("impressions/2026-01-01/07/20260101T070000000000Z-a.ndjson", "b1"),
    _mark("impressions/2026-01-01/07/20260101T070500000000Z-b.ndjson", "b2"),
    _mark("impressions/2026-01-01/09/20260101T090000000000Z-c.ndjson", "b2", 5),
    _mark("impressions/2026-01-02/00/20260102T000000000000Z-d.ndjson", "b2"),
    _mark("impressions/2026-01-02/01/20260102T010000000000Z-e.ndjson", "b3"),
    _mark("clicks/2026-01-01/07/20260101T070000000000Z-f.csv", "b1"),
    _mark("impressions/by-hand.ndjson", "b4"),  # not a landing day's name: never folded
]
NAMES = [m.segment for m in MARKS]


def _rows(ledger: SegmentLedger) -> int:
    with Session(ledger.engine) as session:
        return int(session.execute(select(func.count()).select_from(SEGMENTS)).scalar_one())


def _everything_read(ledger: SegmentLedger) -> dict[str, Any]:
    day = ("impressions/2026-01-01/", "impressions/2026-01-01/08/")
    spanning = ("impressions/2026-01-01/09/", "impressions/2026-01-02/01/")
    return {
        "names": ledger.names(),
        "of a source": ledger.names("clicks"),
        "in a range": ledger.names(between=day),
        "among": ledger.names(among=[NAMES[0], NAMES[3], "clicks/2026-01-01/07/x.csv"]),
        "marks": ledger.marks(between=spanning),
        "table": ledger.table(between=("impressions/", "impressions0")).sort_by("segment"),
        "counts": [ledger.count(r) for r in (day, spanning, ("impressions/", "impressions0"))],
        "any": ledger.any(),
        "of batches": ledger.marks_of_batches({"b2", "b4"}),
    }


def test_folded_marks_read_as_their_rows_did(ax) -> None:
    catalog = ax.lake.catalog
    with catalog.atomic(MARKS):
        pass
    ledger = catalog.ledger
    before = _everything_read(ledger)
    folded = sum(
        ledger.fold(source, day)
        for source, day in [("impressions", "2026-01-01"), ("clicks", "2026-01-01")]
    )
    assert folded == 4 and _rows(ledger) == 3
    assert _everything_read(ledger) == before
    assert ledger.fold("impressions", "2026-01-01") == 0  # nothing left there
    assert ledger.unfolded_days_before("impressions", "2026-01-03") == ["2026-01-02"]
    conflict = pytest.raises(CommitConflictError, match="committed by another processor")
    with conflict, catalog.atomic([MARKS[1]]):  # a folded mark committed again
        pass
    assert _everything_read(ledger) == before


def test_a_replays_forget_of_a_folded_mark_unfolds_its_day(ax) -> None:
    catalog = ax.lake.catalog
    with catalog.atomic(MARKS):
        pass
    ledger = catalog.ledger
    ledger.fold("impressions", "2026-01-01")
    epoch = ledger.epoch()
    with catalog.atomic([], forget=[NAMES[1]]):
        pass
    assert ledger.names() == set(NAMES) - {NAMES[1]}
    assert ledger.epoch() == epoch + 1
    assert _rows(ledger) == len(NAMES) - 1  # the day's other marks are rows again
    with catalog.atomic([MARKS[1]]):  # committed again by the replay's batch
        pass
    assert ledger.names() == set(NAMES)


def _line(user: str, day: int) -> bytes:
    return (
        f'{{"timestamp":"2026-11-0{day}T00:00:00Z","ad_creative_id":"c",'
        f'"user_id":"{user}","website":"w"}}\n'
    ).encode()


@pytest.mark.integration
def test_maintain_folds_the_marks_of_deleted_days_and_a_restored_day_is_done_and_replays(
    ax,
) -> None:
    """Segments of two days processed and then deleted by landing retention: maintain
    folds their marks. Copied back from the archive, they are done (process makes nothing
    of them) and a replay of their day gives the same tables."""
    landed = {}
    for day, user in ((1, "a"), (2, "b")):
        at = datetime(2026, 11, day, 12, tzinfo=UTC)
        landed[user] = ax.landing.write_segment("impressions", _line(user, day), label=user, at=at)
    first = ax.process()
    today = ax.landing.write_segment("impressions", _line("c", 5), label="c")  # held by landing
    ax.process()
    tables = ["curated.impressions", "curated.quarantine", "ops.batches"]
    before = snapshot(ax, tables)
    for segment in landed.values():
        ax.landing.remove(segment)  # as landing retention does
    ledger = ax.lake.ledger
    report = ax.maintain(tables=None)
    assert [t.marks_folded for t in report.tables if t.table == "landing"] == [2]
    assert _rows(ledger) == 1 and ledger.names() == {*(s.name for s in landed.values()), today.name}
    for user, day in (("a", 1), ("b", 2)):  # copied back from the archive
        at = datetime(2026, 11, day, 12, tzinfo=UTC)
        assert (
            ax.landing.write_segment("impressions", _line(user, day), label=user, at=at)
            == landed[user]
        )
    assert ax.process().batches == []
    assert snapshot(ax, tables) == before
    replayed = ax.replay(parse_date("2026-11-01"), parse_date("2026-11-01"))
    assert replayed.batches == first.batches and replayed.segments == 2
    assert snapshot(ax, tables) == before
    assert ax.lake.fold_retired_marks(ax.landing, date(2026, 12, 1)) == 0  # landing holds them


def test_a_day_copied_back_months_before_the_others_unpacks_no_folded_day_between(
    ax, monkeypatch
) -> None:
    """The processor reads the marks of the runs of days the landing zone holds: a day
    copied back from the archive (for a replay) does not have every folded day between it
    and today unpacked at each pending list."""
    catalog = ax.lake.catalog
    with catalog.atomic(MARKS):
        pass
    ledger = catalog.ledger
    ledger.fold("impressions", "2026-01-01")
    ledger.fold("impressions", "2026-01-02")
    for name in (NAMES[0], "impressions/2026-03-01/00/20260301T000000000000Z-z.ndjson"):  # held
        path = ax.landing.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"{}\n")
    unpacked: list[tuple[str, str]] = []

    def watching(reader: Any) -> None:
        unfolded = reader._unfolded

        def watched(self, days):
            unpacked.extend(days)
            return unfolded(self, days)

        monkeypatch.setattr(reader, "_unfolded", watched)

    watching(SegmentLedger)
    watching(SqliteMarks)  # what done_in reads a SQLite catalog's ledger with
    assert NAMES[0] in ax.lake.done_in(ax.landing, ["impressions"])
    assert unpacked == [("impressions", "2026-01-01")]


def test_maintain_folds_only_days_before_the_landing_zones_and_two_days_old(ax) -> None:
    """A source's days are folded before its oldest landing day and at least two days
    before today; a source whose folder holds names that are not of a landing day keeps
    its marks as they are."""
    days = ["2026-01-01", "2026-01-02", "2026-01-08", "2026-01-09"]
    marks = [
        _mark(f"{source}/{day}/00/20260101T000000000000Z-{source}.x", f"b-{day}")
        for source in ("impressions", "clicks", "bids")
        for day in days
    ]
    catalog = ax.lake.catalog
    with catalog.atomic(marks):
        pass
    root = ax.landing.root
    (root / "bids" / "2026-01-02").mkdir(parents=True)  # bids: the landing zone from 01-02
    (root / "clicks").mkdir()
    (root / "clicks" / "loose.csv").write_bytes(b"")  # clicks: not a landing day's name
    folded = ax.lake.fold_retired_marks(ax.landing, date(2026, 1, 10))  # today - 2: 01-08
    ledger = catalog.ledger
    assert folded == 2 + 1  # impressions: 01-01 and 01-02; bids: 01-01
    assert ledger.unfolded_days_before("impressions", "2026-12-31") == days[2:]
    assert ledger.unfolded_days_before("bids", "2026-12-31") == days[1:]
    assert ledger.unfolded_days_before("clicks", "2026-12-31") == days
    assert ledger.names() == {m.segment for m in marks}
