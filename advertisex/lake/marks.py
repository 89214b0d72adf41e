"""The segment ledger's marks, read with the standard library's sqlite3.

``advertisex status`` must answer at a glance, and the ledger's own reader
(:class:`~advertisex.lake.catalog.SegmentLedger`) lives with the catalog, whose import
(pyiceberg's SQL catalog, SQLAlchemy) costs about 0.4 s before any row is read. What a
look at the landing zone asks of the ledger — the epoch, the marks of a range of names
as Arrow columns, how many there are — is three plain statements on a SQLite catalog.
:class:`SqliteMarks` asks them, read-only, the way ``SegmentLedger`` does (folded days
included), and creates nothing: no catalog yet means no marks. Another catalog database
is the ledger's job (:meth:`advertisex.lake.tables.Lake.marks`).

The pure pieces of the ledger's layout (a mark, a landing day's name range, a folded
day's packing) live here too, so both readers share them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import zlib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advertisex.errors import CatalogUnavailableError
from advertisex.util import jsonutil

if TYPE_CHECKING:
    import pyarrow as pa

# The ledger's tables (``lake.catalog`` defines them for SQLAlchemy, with these names).
SEGMENTS_TABLE = "advertisex_segments"
FOLDED_TABLE = "advertisex_segment_days"
EPOCH_TABLE = "advertisex_segment_epoch"
# Names per ``IN (…)`` query: well under SQLite's bound parameter limit.
_CHUNK = 500


@dataclass(frozen=True)
class SegmentDone:
    segment: str
    source: str
    batch_id: str
    records: int
    bytes: int
    committed_at: str


def day_range(source: str, day: str) -> tuple[str, str]:
    """The half-open range of the names of ``source``'s segments landed on ``day``
    ("0" sorts right after "/")."""
    return f"{source}/{day}/", f"{source}/{day}0"


def overlaps(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def days_of(names: Iterable[str]) -> set[tuple[str, str]]:
    """The (source, landing day) of each of ``names`` that is a landing day's name."""
    return {key for name in names if (key := _source_day(name)) is not None}


def _source_day(name: str) -> tuple[str, str] | None:
    parts = name.split("/", 2)
    return (parts[0], parts[1]) if len(parts) == 3 else None


def unpacked(source: str, packed: bytes) -> list[SegmentDone]:
    """The marks a folded day's ``marks`` column holds (a zlib'd JSON array of
    ``[segment, batch_id, records, bytes, committed_at]``)."""
    return [
        SegmentDone(segment, source, batch_id, records, size, committed_at)
        for segment, batch_id, records, size, committed_at in jsonutil.loads(
            zlib.decompress(packed)
        )
    ]


def marks_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    """Marks' (segment, records, bytes, committed_at) rows as Arrow columns: thousands at
    once, without an object per row."""
    import pyarrow as pa

    segment, records, size, committed = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pa.table(
        {
            "segment": pa.array(segment, pa.string()),
            "records": pa.array(records, pa.int64()),
            "bytes": pa.array(size, pa.int64()),
            "committed_at": pa.array(committed, pa.string()).cast(
                pa.timestamp("us", tz="UTC")  # ISO-8601 with its offset
            ),
        }
    )


def folded_asked(
    days: list[tuple[str, str, int]],
    between: tuple[str, str] | None,
    among: Collection[str] | None,
    unfolded: Callable[[list[tuple[str, str]]], list[SegmentDone]],
) -> list[SegmentDone]:
    """The marks of the folded ``days`` (source, day, count) in ``between`` or ``among``,
    ``unfolded`` reading a list of days' marks: only the days the names asked for can be in
    are unpacked (none, for the ranges of the days the landing zone holds)."""
    wanted = None if among is None else set(among)
    if wanted is not None:
        asked = days_of(wanted)
        keys = [(s, d) for s, d, _ in days if (s, d) in asked]
    elif between is not None:
        keys = [(s, d) for s, d, _ in days if overlaps(day_range(s, d), between)]
    else:
        keys = [(s, d) for s, d, _ in days]
    return [
        mark
        for mark in (unfolded(keys) if keys else [])
        if (between is None or between[0] <= mark.segment < between[1])
        and (wanted is None or mark.segment in wanted)
    ]


def folded_count(
    between: tuple[str, str],
    days: list[tuple[str, str, int]],
    unfolded: Callable[[list[tuple[str, str]]], list[SegmentDone]],
) -> int:
    """How many marks of the folded ``days`` are in the half-open name range ``between``: a
    day wholly inside counts whole, a day it cuts is unpacked."""
    counted = 0
    for source, day, segments in days:
        low, high = day_range(source, day)
        if between[0] <= low and high <= between[1]:
            counted += segments
        elif low < between[1] and between[0] < high:
            counted += sum(between[0] <= m.segment < between[1] for m in unfolded([(source, day)]))
    return counted


class SqliteMarks:
    """What the monitor reads of the ledger (:meth:`epoch`, :meth:`table`, :meth:`count`),
    answered as ``SegmentLedger`` answers it, from the SQLite file ``database``."""

    def __init__(self, database: str) -> None:
        self.database = database

    def epoch(self) -> int:
        """Raised whenever committed marks are withdrawn (0 before the first time)."""
        rows = self._read(f"SELECT epoch FROM {EPOCH_TABLE} WHERE name = 'ledger'", [], EPOCH_TABLE)
        return int(rows[0][0] or 0) if rows else 0

    def table(
        self, *, between: tuple[str, str] | None = None, among: Collection[str] | None = None
    ) -> pa.Table:
        """The marks as Arrow columns (segment, records, bytes, committed_at)."""
        query = f"SELECT segment, records, bytes, committed_at FROM {SEGMENTS_TABLE} WHERE 1"
        params: list[Any] = []
        if between is not None:
            query += " AND segment >= ? AND segment < ?"
            params += list(between)
        rows: list[tuple[Any, ...]] = []
        if among is None:
            rows = self._read(query, params, SEGMENTS_TABLE)
        else:
            names = list(among)
            for i in range(0, len(names), _CHUNK):
                chunk = names[i : i + _CHUNK]
                where = f" AND segment IN ({', '.join('?' * len(chunk))})"
                rows += self._read(query + where, params + chunk, SEGMENTS_TABLE)
        rows += [
            (m.segment, m.records, m.bytes, m.committed_at)
            for m in folded_asked(self._folded_days(), between, among, self._unfolded)
        ]
        return marks_table(rows)

    def names(self, *, between: tuple[str, str]) -> set[str]:
        """Names of the committed segments in the half-open name range ``between``."""
        query = f"SELECT segment FROM {SEGMENTS_TABLE} WHERE segment >= ? AND segment < ?"
        found = {str(row[0]) for row in self._read(query, list(between), SEGMENTS_TABLE)}
        folded = folded_asked(self._folded_days(), between, None, self._unfolded)
        return found | {mark.segment for mark in folded}

    def any(self) -> bool:
        """Whether any segment was ever committed."""
        query = f"SELECT 1 FROM {SEGMENTS_TABLE} LIMIT 1"
        return bool(self._read(query, [], SEGMENTS_TABLE)) or bool(self._folded_days())

    def count(self, between: tuple[str, str]) -> int:
        """How many segments in the half-open name range ``between`` are committed."""
        query = f"SELECT count(*) FROM {SEGMENTS_TABLE} WHERE segment >= ? AND segment < ?"
        rows = self._read(query, list(between), SEGMENTS_TABLE)
        counted = int(rows[0][0]) if rows else 0
        return counted + folded_count(between, self._folded_days(), self._unfolded)

    # ------------------------------------------------------------------ folded days
    def _folded_days(self) -> list[tuple[str, str, int]]:
        query = f"SELECT source, day, segments FROM {FOLDED_TABLE}"
        return [(str(s), str(d), int(n)) for s, d, n in self._read(query, [], FOLDED_TABLE)]

    def _unfolded(self, days: Collection[tuple[str, str]]) -> list[SegmentDone]:
        marks: list[SegmentDone] = []
        query = f"SELECT source, marks FROM {FOLDED_TABLE} WHERE source = ? AND day = ?"
        for source, day in sorted(days):
            for found, packed in self._read(query, [source, day], FOLDED_TABLE):
                marks += unpacked(str(found), packed)
        return marks

    # ------------------------------------------------------------------ the database
    def _read(self, query: str, params: list[Any], table: str) -> list[tuple[Any, ...]]:
        """Rows of ``query``; none while the catalog or ``table`` does not exist (a
        catalog no writer of this version has opened yet). A locked or unreadable file is
        :class:`CatalogUnavailableError`, as the ledger's driver errors are."""
        if not Path(self.database).exists():
            return []
        try:
            database = f"file:{self.database}?mode=ro"
            with contextlib.closing(sqlite3.connect(database, uri=True, timeout=10)) as con:
                known = con.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
                ).fetchone()
                return con.execute(query, params).fetchall() if known else []
        except sqlite3.Error as error:
            raise CatalogUnavailableError(
                f"the catalog database failed: {error}",
                hint="another process may hold it, its disk be full or its server down; fix "
                "that and run the same command again (nothing was committed half-way)",
            ) from error
