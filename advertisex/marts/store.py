"""What mart maintenance reads and writes through: two small interfaces, and in-memory fakes.

* :class:`Curated` — the curated tables: where each stands now, the rows appended
  since a remembered position, and rows of a time range (optionally of some users),
  whole or a part at a time (:class:`Chunks`).
* :class:`Marts` — the marts: their state, rows of a slice, and an atomic replacement
  of slices in several marts together with the new state.

A :class:`Slice` names the rows a replacement covers: time ranges (half-open) of one
column, optionally only of some users. It evaluates as an Arrow mask here and as a
pyiceberg row filter in ``advertisex.marts.iceberg``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.model.marts import SLICE_COLUMN
from advertisex.model.schemas import TABLES

Bound = datetime | date
Range = tuple[Bound, Bound]  # [lo, hi)


@dataclass(frozen=True)
class Slice:
    """Rows of ``column`` within any of ``ranges``, and of ``users`` when given.

    ``Slice.everything()`` covers a whole table.

    >>> from datetime import UTC
    >>> s = Slice("t", ((datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)),))
    >>> s.mask(pa.table({"t": [datetime(2026, 1, 1, 5, tzinfo=UTC)]})).to_pylist()
    [True]
    """

    column: str | None
    ranges: tuple[Range, ...] = ()
    users: frozenset[str] | None = None

    @classmethod
    def everything(cls) -> Slice:
        return cls(None)

    @property
    def is_everything(self) -> bool:
        return self.column is None

    @property
    def is_empty(self) -> bool:
        return not self.is_everything and (not self.ranges or self.users == frozenset())

    def mask(self, table: pa.Table) -> pa.ChunkedArray | pa.Array:
        """True for the rows of ``table`` inside the slice."""
        if self.is_everything:
            return pa.repeat(True, table.num_rows)
        assert self.column is not None
        column = table.column(self.column)
        inside: pa.Array | pa.ChunkedArray
        if len(self.ranges) > _FEW_RANGES:
            inside = _within_ranges(column, self.ranges)
        else:
            inside = pa.repeat(False, table.num_rows)
            for lo, hi in self.ranges:
                within = pc.and_(
                    pc.greater_equal(column, pa.scalar(lo, column.type)),
                    pc.less(column, pa.scalar(hi, column.type)),
                )
                inside = pc.or_(inside, within)
        if self.users is not None:
            wanted = pa.array(sorted(self.users), pa.string())
            inside = pc.and_(inside, pc.is_in(table.column("user_id"), value_set=wanted))
        return pc.fill_null(inside, False)

    def rows_of(self, table: pa.Table) -> pa.Table:
        """The rows of ``table`` inside the slice (``table`` itself for everything: no
        mask built and no copy made of a whole table)."""
        return table if self.is_everything else table.filter(self.mask(table))

    def days(self) -> set[date]:
        """The days (UTC) its ranges reach into.

        >>> from datetime import UTC
        >>> at = lambda d, h=0: datetime(2026, 1, d, h, tzinfo=UTC)
        >>> sorted(d.day for d in Slice("t", ((at(1, 23), at(3)), (at(9, 5), at(9, 6)))).days())
        [1, 2, 9]
        """
        days: set[date] = set()
        for lo, hi in self.ranges:
            first, last = _day_of(lo), _day_of(hi, before=True)
            days.update(first + timedelta(days=k) for k in range((last - first).days + 1))
        return days

    def bounds(self) -> Range | None:
        if not self.ranges:
            return None
        return min(lo for lo, _ in self.ranges), max(hi for _, hi in self.ranges)


# Past this many ranges a mask is one sorted search of the rows' values among the ranges,
# not a comparison of every row with each range (a late trickle's scattered hours over a
# month: hundreds of ranges, each a pass over a million rows).
_FEW_RANGES = 8


def _within_ranges(column: pa.ChunkedArray, ranges: Iterable[Range]) -> pa.Array:
    """Whether each value of ``column`` (a timestamp or a date) lies in one of ``ranges``
    (null: no), by a sorted search among their merged bounds.

    >>> at = lambda d: datetime(2026, 1, d, tzinfo=UTC)
    >>> col = pa.chunked_array([[at(1), at(2), None, at(5), at(9)]], pa.timestamp("us", "UTC"))
    >>> _within_ranges(col, [(at(4), at(6)), (at(1), at(2)), (at(5), at(10))]).to_pylist()
    [True, False, False, True, True]
    """
    import numpy as np

    merged = merge_ranges(ranges)
    bounds = pa.array([b for r in merged for b in r], column.type)
    as_int = pa.int32() if pa.types.is_date32(column.type) else pa.int64()
    edges = np.asarray(bounds.cast(as_int), dtype=np.int64)
    los, his = edges[0::2], edges[1::2]
    values = np.asarray(pc.fill_null(column.cast(as_int), 0), dtype=np.int64)
    at = np.searchsorted(los, values, side="right") - 1  # the last range starting at or before
    inside = (at >= 0) & (values < his[np.maximum(at, 0)])
    return pa.array(inside & np.asarray(pc.is_valid(column), dtype=bool))


def _day_of(bound: Bound, before: bool = False) -> date:
    """The day (UTC) of ``bound``, or (``before``) of the instant just before it."""
    if isinstance(bound, datetime):
        at = bound.astimezone(UTC) if bound.tzinfo else bound
        return (at - timedelta(microseconds=1) if before else at).date()
    return bound - timedelta(days=1) if before else bound


def merge_ranges(ranges: Iterable[Range]) -> tuple[Range, ...]:
    """Sorted, with overlapping or touching ranges joined."""
    merged: list[list[Bound]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


@dataclass(frozen=True)
class Chunks:
    """A read planned: at most how many rows it holds (known before reading, from
    metadata), then its rows whole or a part at a time (each part bounded: a record batch,
    an appended batch)."""

    rows: int
    whole: Callable[[], pa.Table]
    parts: Callable[[], Iterator[pa.Table]]

    def filtered(self, keep: Callable[[pa.Table], pa.Table]) -> Chunks:
        """The same read with ``keep`` applied to what it gives."""
        return Chunks(
            self.rows, lambda: keep(self.whole()), lambda: (keep(part) for part in self.parts())
        )


class Curated(Protocol):
    def positions(self) -> dict[str, int | None]:
        """Current position of each curated table (None: still empty)."""
        ...

    def added(
        self, table: str, since: int | None, until: int | None, columns: tuple[str, ...]
    ) -> pa.Table | None:
        """Rows appended after ``since`` up to ``until``; None when rows were rewritten."""
        ...

    def added_parts(
        self, table: str, since: int | None, until: int | None, columns: tuple[str, ...]
    ) -> list[Callable[[], pa.Table | None]] | None:
        """The rows :meth:`added` gives, as parts read one at a time when called (a data
        file's rows each); None as for :meth:`added`, and a part that can no longer be read
        gives None."""
        ...

    def chunks(self, table: str, where: Slice, columns: tuple[str, ...]) -> Chunks:
        """Rows of ``table`` inside ``where``: the read planned."""
        ...

    def spill_dir(self) -> Path | None:
        """Where a step too big for memory spills its buckets (None: the system's
        temporary folder)."""
        ...

    def first_day(self, table: str) -> date | None:
        """The earliest day (UTC) ``table`` holds rows of, by its day partition (None:
        empty)."""
        ...

    def kept_from(self, table: str) -> date | None:
        """The first day of ``table`` its retention keeps today (None: it keeps all)."""
        ...


def storage_errors(where: str, what: str = "the marts") -> contextlib.AbstractContextManager[None]:
    """OS errors writing ``what`` under ``where`` (a full disk, say) as the one-line
    ``StorageError`` of a marts update: the committed batches are kept, and a rerun brings
    the marts level with them."""
    from advertisex.lake.tables import storage_errors as lake_storage_errors

    return lake_storage_errors(
        where,
        what=what,
        outcome="they were left as they were (the committed batches are kept)",
        then="it brings the marts level with the committed batches",
    )


class Marts(Protocol):
    def state(self) -> dict[str, str]: ...

    def read(self, table: str, where: Slice) -> pa.Table: ...

    def offer(self, table: str, rows: pa.Table) -> None:
        """``rows`` are to be all of ``table`` (a rebuild's, before its :meth:`replace`):
        a store may start keeping them while the other marts are computed."""
        ...

    def first_day(self) -> date | None:
        """The earliest day (UTC) any mart holds rows of (None: none yet)."""
        ...

    def replace(self, changes: Mapping[str, tuple[Slice, pa.Table]], state: dict[str, str]) -> None:
        """In every named mart swap the rows of the slice for the new rows; save ``state``.
        All of it or nothing."""
        ...


@dataclass
class MemoryCurated:
    """Curated tables as lists of appended Arrow batches; the position is the batch count."""

    batches: dict[str, list[pa.Table]] = field(default_factory=dict)
    retention: dict[str, date] = field(default_factory=dict)  # table → first day kept
    _whole: dict[str, pa.Table] = field(default_factory=dict, repr=False)

    def append(self, appends: Mapping[str, pa.Table]) -> None:
        for name, rows in appends.items():
            self.batches.setdefault(name, []).append(rows)
            self._whole.pop(name, None)

    def positions(self) -> dict[str, int | None]:
        return {name: len(parts) or None for name, parts in self.batches.items()}

    def added(
        self, table: str, since: int | None, until: int | None, columns: tuple[str, ...]
    ) -> pa.Table | None:
        parts = self.batches.get(table, [])[since or 0 : until or 0]
        return _concat(parts, table).select(list(columns))

    def added_parts(
        self, table: str, since: int | None, until: int | None, columns: tuple[str, ...]
    ) -> list[Callable[[], pa.Table | None]] | None:
        def part(rows: pa.Table) -> Callable[[], pa.Table | None]:
            return lambda: _concat([rows], table).select(list(columns))

        return [part(rows) for rows in self.batches.get(table, [])[since or 0 : until or 0]]

    def _read(self, table: str, where: Slice, columns: tuple[str, ...]) -> pa.Table:
        if table not in self._whole:
            self._whole[table] = _concat(self.batches.get(table, []), table)
        rows = self._whole[table].select(list(columns))
        return rows.filter(where.mask(rows))

    def chunks(self, table: str, where: Slice, columns: tuple[str, ...]) -> Chunks:
        schema = TABLES[table].schema
        parts = self.batches.get(table, [])

        def read() -> Iterator[pa.Table]:
            for part in parts:
                rows = part.cast(schema).select(list(columns))
                yield rows.filter(where.mask(rows))

        return Chunks(
            sum(part.num_rows for part in parts), lambda: self._read(table, where, columns), read
        )

    def spill_dir(self) -> Path | None:
        return None

    def first_day(self, table: str) -> date | None:
        column = TABLES[table].partition_by_day
        rows = _concat(self.batches.get(table, []), table)
        return _earliest_day(rows.column(column)) if column else None

    def kept_from(self, table: str) -> date | None:
        return self.retention.get(table)


@dataclass
class MemoryMarts:
    """Marts as whole Arrow tables in a dict."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    saved_state: dict[str, str] = field(default_factory=dict)

    def state(self) -> dict[str, str]:
        return dict(self.saved_state)

    def read(self, table: str, where: Slice) -> pa.Table:
        rows = self.tables.get(table, TABLES[table].schema.empty_table())
        return rows.filter(where.mask(rows))

    def offer(self, table: str, rows: pa.Table) -> None:
        """Nothing to start: a replace is a dict's update."""

    def first_day(self) -> date | None:
        days = [
            day
            for name, rows in self.tables.items()
            if name in SLICE_COLUMN and (day := _earliest_day(rows.column(SLICE_COLUMN[name])))
        ]
        return min(days, default=None)

    def replace(self, changes: Mapping[str, tuple[Slice, pa.Table]], state: dict[str, str]) -> None:
        for name, (where, rows) in changes.items():
            current = self.tables.get(name, TABLES[name].schema.empty_table())
            kept = current.filter(pc.invert(where.mask(current)))
            self.tables[name] = pa.concat_tables([kept, rows.cast(kept.schema)])
        self.saved_state = dict(state)


def _earliest_day(times: pa.ChunkedArray) -> date | None:
    earliest = pc.min(times).as_py()
    return earliest.date() if isinstance(earliest, datetime) else earliest


def _concat(parts: list[pa.Table], table: str) -> pa.Table:
    schema = TABLES[table].schema
    return pa.concat_tables([p.cast(schema) for p in parts]) if parts else schema.empty_table()
