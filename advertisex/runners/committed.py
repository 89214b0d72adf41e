"""The committed dedupe keys of the lake, kept in memory between a runner's batches.

Every batch dedupes against the keys committed within the horizon of its events
(``processor.dedupe_horizon_days``, 7 by default). Reading them from the tables for
every batch costs the whole horizon each time — under ``process --follow`` that is per
micro-batch, and it grows with the lake. :class:`CommittedKeys` reads each event day
once and then follows the tables by their data files:

* the cache always mirrors a table's *current* snapshot: at each lookup the data files
  appended since the snapshot it last saw are read (a batch's own files, a few MB) and
  their rows join the days already held. A compaction changes files, not rows, and is
  stepped over; any other rewrite (a replay, retention, an erasure) drops the cache,
  which then reloads from the tables;
* days a lookup needs and the cache lacks are read from the current snapshot, by day;
* days before the oldest a lookup needed are let go (a late batch reads them again).

So a lookup returns exactly the rows a scan of the current snapshot with the same
event-time bounds would: the cache changes the cost, never the answer.

Of every part of :data:`STORED_ROWS_MIN` rows or more, nothing is in the heap: the rows —
key and payload-hash text, event time, ≈ 70 bytes a row — are written to an Arrow IPC
file and mapped back (:class:`MappedRows`), so only the pages of the rows a candidate's
hash hits are ever read in (a 10 M-event day: 9.8 M keys, 685 MiB in memory before); the
keys' 64-bit hashes, sorted, and their order (16 bytes a row) to a file of their own, of
which a lookup's binary search reads a few pages a hash (in the heap, they were 2.8 GB a
day of the horizon at 2,000 events a second). Smaller parts — a micro-batch's rows until
merged — stay in memory.

:class:`DedupeLookup` is what a batch asks: the committed keys its candidates could
repeat, within the dedupe horizon of their event times — from the cache for an
in-process dedupe, or as the data files to read for an engine whose workers read them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.errors import LakeError
from advertisex.kernels.dedupe import SEEN_COLUMNS, KeyIndex, append_part, key_column, key_hashes
from advertisex.lake.history import COMPACTION, appended_since
from advertisex.lake.tables import storage_errors
from advertisex.model.schemas import TABLES
from advertisex.util.arrays import utc_days
from advertisex.util.buckets import regrouped
from advertisex.util.mapped import map_file, view_of
from advertisex.util.spill import PREFIX, claimed_file, place, sweep
from advertisex.util.timeutil import MICROSECOND, from_micros, moved, to_micros

if TYPE_CHECKING:
    from advertisex.lake.tables import Lake, PlannedRead

DAY = timedelta(days=1)


@dataclass
class _TableKeys:
    snapshot_id: int | None = None
    # Event day → its rows in parts, each indexed by key hash: a day read whole, then
    # the rows of each later batch (merged as they pile up: kernels.dedupe.append_part).
    days: dict[date, list[KeyIndex]] = field(default_factory=dict)


# Parts smaller than this (a micro-batch's rows) stay in memory until merged into a bigger one.
STORED_ROWS_MIN = 1 << 16
WRITTEN_ROWS = 1 << 20  # rows of a record batch of a stored day: a few chunks a column
KEYS_PREFIX = PREFIX + "keys-"  # a stored part's file


class MappedRows:
    """Rows written to an Arrow IPC file in ``directory`` (the lake's spill directory; default:
    the system's temporary folder) and read back memory-mapped, the file unlinked at once:
    the mapping keeps it until the rows are let go. While it is written the file is claimed
    (``util.spill``), so one a killed process left half-written is swept by the next
    ``MappedRows`` of that directory. A record batch per part of up to :data:`WRITTEN_ROWS`
    rows, so an index keeps them as they are (a few chunks a column). On the lake's disk,
    not in a temporary folder that may live in memory: mapped from tmpfs, every row would
    take memory, which mapping is there to spare."""

    def __init__(self, smallest: int = STORED_ROWS_MIN, directory: Path | None = None) -> None:
        self.smallest = smallest
        self.directory = directory
        if directory is not None:  # what processes killed mid-write left there
            sweep(directory)

    def __call__(self, rows: pa.Table) -> pa.Table:
        if rows.num_rows < self.smallest:
            return rows
        return self._mapped(iter([rows]), rows.schema)

    def written(
        self,
        parts: Iterator[pa.Table],
        schema: pa.Schema,
        hash_of: Callable[[pa.Table], np.ndarray],
    ) -> tuple[pa.Table, np.ndarray]:
        """``parts`` (of ``schema``) as one table, stored as they come, and ``hash_of`` each
        part's rows: what a :class:`KeyIndex` of them needs, never all the rows in memory."""
        hashes = [np.zeros(0, dtype=np.uint64)]

        def hashed() -> Iterator[pa.Table]:
            for part in regrouped(parts, WRITTEN_ROWS):
                hashes.append(hash_of(part))
                yield part

        rows = self._mapped(hashed(), schema)
        return rows, np.concatenate(hashes)

    def arrays(self, order: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A :class:`~advertisex.kernels.dedupe.KeyIndex`'s arrays (its rows' order, their
        sorted key hashes) of a part of :attr:`smallest` rows or more, written to a file and
        mapped back, read-only: in the heap they were 16 bytes a committed key for every day
        of the horizon held — 2.8 GB a day at 2,000 events a second, 8 days of them."""
        if len(order) < max(self.smallest, 1):  # an empty file cannot be mapped
            return order, hashes
        with storage_errors(place(self.directory), "the dedupe keys"):
            claim, path = claimed_file(KEYS_PREFIX, ".index", self.directory)
            try:
                with open(path, "wb") as out:
                    for array in (order, hashes):
                        out.write(np.ascontiguousarray(array).data)
                view = view_of(map_file(str(path)))
                return (
                    np.frombuffer(view, order.dtype, len(order)),
                    np.frombuffer(view, hashes.dtype, len(hashes), offset=order.nbytes),
                )
            finally:
                path.unlink()
                os.close(claim)

    def _mapped(self, parts: Iterator[pa.Table], schema: pa.Schema) -> pa.Table:
        """``parts`` written to a file a record batch each, and mapped back."""
        try:
            # A full disk (say): the one-line error of a batch, which commits nothing. What
            # reading ``parts`` raises is raised as it is (:class:`_ReadFailed`).
            with storage_errors(place(self.directory), "the dedupe keys"):
                claim, path = claimed_file(KEYS_PREFIX, ".arrow", self.directory)
                try:
                    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as out:
                        for part in _read_apart(parts):  # a failed read leaves no file either
                            out.write_table(part.combine_chunks())
                    # Mapped by util.mapped, whose release_pages lets go of what lookups touched.
                    return pa.ipc.open_file(pa.py_buffer(view_of(map_file(str(path))))).read_all()
                finally:
                    path.unlink()
                    os.close(claim)
        except _ReadFailed as failed:  # the read's own error, as its reader raised it
            raise failed.error from failed.error.__cause__


class _ReadFailed(Exception):
    """An error reading the rows to store, carried past the storage's error handling."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _read_apart(parts: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """``parts``, what reading them raises carried as :class:`_ReadFailed`."""
    try:
        yield from parts
    except Exception as error:
        raise _ReadFailed(error) from error


class CommittedKeys:
    """Committed (key columns, payload_hash, event_time) rows per table and event day;
    ``stored_rows_min``: parts of that many rows or more are kept in mapped files."""

    def __init__(self, lake: Lake, stored_rows_min: int = STORED_ROWS_MIN) -> None:
        self.lake = lake
        self._tables: dict[str, _TableKeys] = {}
        self._store = MappedRows(stored_rows_min, lake.settings.spill_dir)

    def lookup(self, table_name: str, spans: list[Span]) -> pa.Table | None:
        """Committed rows of ``table_name`` whose event time lies in one of ``spans``
        (closed, in order and apart: :func:`horizon_spans`); None if none."""
        return self._rows(table_name, spans, None)

    def matching(self, table_name: str, hashes: np.ndarray, spans: list[Span]) -> pa.Table | None:
        """:meth:`lookup`'s rows whose key hash is one of ``hashes`` (sorted, unique:
        ``distinct_hashes`` of their :func:`~advertisex.kernels.dedupe.key_hashes`) — what a batch's candidates may repeat,
        found by binary search in each day's index instead of a join of the whole horizon."""
        return self._rows(table_name, spans, hashes)

    def _rows(
        self, table_name: str, spans: list[Span], hashes: np.ndarray | None
    ) -> pa.Table | None:
        table = self.lake.table(table_name)
        snapshot = table.current_snapshot()
        if snapshot is None:
            self._tables.pop(table_name, None)
            return None
        state = self._follow(table_name, table, snapshot.snapshot_id)
        wanted = sorted({day for low, high in spans for day in _days(low, high)})
        if not wanted:
            return None
        missing = [day for day in wanted if day not in state.days]
        if missing:
            self._load(table_name, state, missing)
        for day in [d for d in state.days if d < wanted[0]]:
            del state.days[day]  # older than any batch needs now
        parts = [part for day in wanted for part in state.days[day]]
        if not parts:
            return None
        rows = pa.concat_tables(
            [part.rows if hashes is None else part.matching(hashes) for part in parts]
        )
        rows = rows.filter(within(rows.column("event_time"), spans))
        return rows if rows.num_rows else None

    def _follow(self, table_name: str, table: Any, snapshot_id: int) -> _TableKeys:
        """The table's cache brought to ``snapshot_id``: rows of files added since joined."""
        state = self._tables.get(table_name)
        if state is not None and state.snapshot_id == snapshot_id:
            return state
        appended = None
        if state is not None and state.snapshot_id is not None:
            try:
                appended = appended_since(table, state.snapshot_id, snapshot_id, (COMPACTION,))
            except FileNotFoundError:  # a manifest list of snapshots expired meanwhile
                appended = None
        added = None
        if appended and state is not None and state.days:
            try:
                added = self._read_files(table_name, sorted(f.file_path for f in appended))
            except FileNotFoundError:  # an appended file compacted and deleted since
                appended = None
        if state is None or appended is None:
            state = _TableKeys()  # first use, or rows rewritten: start over
        else:
            for day, rows in _by_day(added).items():
                if day in state.days:  # days not held are read whole when first needed
                    part = self._indexed(table_name, rows)
                    state.days[day] = append_part(state.days[day], part, store=self._store)
        state.snapshot_id = snapshot_id
        self._tables[table_name] = state
        return state

    def _load(self, table_name: str, state: _TableKeys, days: list[date]) -> None:
        """Each day's rows read from the current snapshot, a record batch at a time, and
        written out as they come (a day of a backlog is millions of keys: read whole, then
        copied into one chunk a column, it took twice their size at a batch's start).
        Planned once for each run of consecutive days; a day of no files holds no part."""
        schema = _schema(table_name)
        for first, last in _runs(days):
            planned = self.lake.read_days(table_name, first, last, tuple(schema.names))
            for k in range((last - first).days + 1):
                day = first + k * DAY
                state.days[day] = (
                    [] if day not in planned else [self._read(table_name, schema, planned[day])]
                )

    def _read(self, table_name: str, schema: pa.Schema, planned: PlannedRead) -> KeyIndex:
        """A day's planned rows, written out as they come, indexed by key hash."""
        parts = (
            pa.Table.from_batches([batch]).select(schema.names).cast(schema)
            for batch in planned.batches()
        )
        rows, hashes = self._store.written(
            parts, schema, lambda rows: key_hashes(key_column(table_name, rows))
        )
        return self._index(rows, hashes)

    def _indexed(self, table_name: str, rows: pa.Table) -> KeyIndex:
        return self._index(self._store(rows), key_hashes(key_column(table_name, rows)))

    def _index(self, rows: pa.Table, hashes: np.ndarray) -> KeyIndex:
        """``rows`` indexed by their key ``hashes``, the index kept where the rows are."""
        order = np.argsort(hashes)
        return KeyIndex.sorted_by(rows, *self._store.arrays(order, hashes[order]))

    def _read_files(self, table_name: str, paths: list[str]) -> pa.Table | None:
        import pyarrow.parquet as pq

        from advertisex.util.storage import resolve

        schema = _schema(table_name)
        parts = []
        for path in paths:
            filesystem, located = resolve(path, self.lake.settings.scale)
            data = pq.read_table(located, columns=schema.names, filesystem=filesystem)
            parts.append(data.select(schema.names).cast(schema))
        return pa.concat_tables(parts) if parts else None


class DedupeLookup:
    """The committed events a batch's candidates may repeat: keys committed within the
    dedupe horizon (``processor.dedupe_horizon_days``) of the candidates' event times.

    Called as ``lookup(table_name, candidates, key_hashes)`` it is the in-process dedupe's
    question (:class:`advertisex.runners.batch.Repeats`): those committed rows whose key
    a candidate may share, or None. :meth:`data_files` names the files that hold them.
    """

    def __init__(
        self,
        lake: Lake,
        horizon: timedelta,
        keys: CommittedKeys | None = None,
        *,
        nothing_committed: bool = False,
    ) -> None:
        self.lake = lake
        self.horizon = horizon
        self.keys = keys or CommittedKeys(lake)
        # A batch that started with no catalog (a new lake's first): no committed row, and
        # no table to wait for while its tables are made beside its pieces.
        self.nothing_committed = nothing_committed

    def spans(self, times: pa.Array | pa.ChunkedArray) -> list[Span]:
        """Event times a repeat of candidates timed at ``times`` may have."""
        return horizon_spans(times, self.horizon)

    def around(self, firsts: np.ndarray, lasts: np.ndarray) -> list[Span]:
        """Event times a repeat of candidates timed within the intervals from ``firsts[i]``
        to ``lasts[i]`` (µs since the epoch) may have."""
        return spans_around(firsts, lasts, self.horizon)

    def __call__(
        self, table_name: str, candidates: pa.Table, hashes: np.ndarray
    ) -> pa.Table | None:
        """Committed rows (key columns, ``payload_hash``, ``event_time``) within the horizon
        of ``candidates``' event times whose key hash is among ``hashes`` (the candidates'
        :func:`~advertisex.kernels.dedupe.key_hashes`, sorted and unique); None if none."""
        if (
            candidates.num_rows == 0
            or self.nothing_committed
            or self.lake.table(table_name).current_snapshot() is None
        ):
            return None
        return self.keys.matching(table_name, hashes, self.spans(candidates.column("event_time")))

    def data_files(self, table_name: str, low: datetime, high: datetime) -> list[str]:
        """Data files of ``table_name`` that may hold committed rows with event times in
        [``low``, ``high``] (one of :meth:`spans`); their rows still need that filter."""
        from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual

        table = self.lake.table(table_name)
        if table.current_snapshot() is None:
            return []
        row_filter = And(
            GreaterThanOrEqual("event_time", low.isoformat()),  # type: ignore[call-arg,misc]
            LessThanOrEqual("event_time", high.isoformat()),  # type: ignore[call-arg,misc]
        )
        fields = (*SEEN_COLUMNS[table_name], "event_time")
        files = []
        for task in table.scan(row_filter=row_filter, selected_fields=fields).plan_files():
            if task.delete_files:
                raise LakeError(
                    f"{table_name} has delete files, which a data-file read of its keys misses"
                )
            files.append(task.file.file_path)
        return files


# Event times from the first to the second, both included (UTC datetimes).
Span = tuple[datetime, datetime]
# Horizons less than this apart share a span: a lookup reads whole days anyway, and with a
# horizon of 0 days every instant of a batch would be a span of its own.
SPAN_GAP_MIN = DAY


def horizon_spans(times: pa.Array | pa.ChunkedArray, horizon: timedelta) -> list[Span]:
    """The event times within ``horizon`` of one of ``times`` (timestamps; nulls aside),
    as the fewest spans, in order and apart (and the gaps between horizons less than
    :data:`SPAN_GAP_MIN` wide).

    A batch's events are mostly hours apart: one span, from the earliest less the horizon
    to the latest plus it. One whose events lie years apart (an event of 1970-01-01, a
    producer's "no time", among today's) wants the horizon around each cluster of them,
    not every day in between: with one span, its lookup read the committed keys of
    ≈ 20,500 days, 53 s for a batch of two impressions.

    >>> at = lambda *days: pa.array([from_micros(d * 86_400_000_000) for d in days])
    >>> [(a.date().isoformat(), b.date().isoformat())
    ...  for a, b in horizon_spans(at(0, 20_000, 3, 19_990), timedelta(days=7))]
    [('1969-12-25', '1970-01-11'), ('2024-09-17', '2024-10-11')]
    """
    bounds = pc.min_max(times).as_py()
    low, high = bounds["min"], bounds["max"]
    if low is None:
        return []
    if high - low <= 2 * horizon + SPAN_GAP_MIN:  # no gap can part them: one span
        return [(moved(low, -horizon), moved(high, horizon))]
    micros = np.unique(pc.drop_null(times).cast(pa.int64()).to_numpy())
    return spans_around(micros, micros, horizon)


def spans_around(firsts: np.ndarray, lasts: np.ndarray, horizon: timedelta) -> list[Span]:
    """The event times within ``horizon`` of one of the intervals from ``firsts[i]`` to
    ``lasts[i]`` (µs since the epoch) as the fewest spans, in order and apart: the
    Spark runner's, from the bounds of each task's key files (:func:`horizon_spans`)."""
    order = np.argsort(firsts, kind="stable")
    firsts, lasts = firsts[order], np.maximum.accumulate(lasts[order])
    # Two intervals' horizons overlap when they are at most two horizons apart; a gap
    # between them shorter than SPAN_GAP_MIN is spanned too.
    reach = (2 * horizon + SPAN_GAP_MIN) // MICROSECOND
    apart = np.flatnonzero(firsts[1:] - lasts[:-1] > reach)
    starts = firsts[np.concatenate([[0], apart + 1])]
    ends = lasts[np.concatenate([apart, [lasts.size - 1]])]
    return [
        (moved(from_micros(a), -horizon), moved(from_micros(b), horizon))
        for a, b in zip(starts, ends, strict=True)
    ]


def span_index(times: pa.Array | pa.ChunkedArray, spans: list[Span]) -> np.ndarray:
    """For each of ``times``, the index of the span of ``spans`` (in order and apart)
    that holds it, or -1 (a null time too)."""
    micros = pc.fill_null(times.cast(pa.int64()), np.iinfo(np.int64).min).to_numpy()
    starts = np.array([to_micros(a) for a, _ in spans], dtype=np.int64)
    ends = np.array([to_micros(b) for _, b in spans], dtype=np.int64)
    span = np.searchsorted(starts, micros, side="right") - 1  # the last starting before
    return np.where((span >= 0) & (micros <= ends[np.maximum(span, 0)]), span, -1)


def within(times: pa.ChunkedArray, spans: list[Span]) -> pa.Array | pa.ChunkedArray:
    """Which of ``times`` lie in one of ``spans`` (in order and apart)."""
    if len(spans) == 1:
        [(low, high)] = spans
        return pc.and_(
            pc.greater_equal(times, pa.scalar(low, times.type)),
            pc.less_equal(times, pa.scalar(high, times.type)),
        )
    return pa.array(span_index(times, spans) >= 0)


def _days(low: datetime, high: datetime) -> list[date]:
    """The UTC days from ``low``'s to ``high``'s."""
    first = low.astimezone(UTC).date()
    return [first + k * DAY for k in range((high.astimezone(UTC).date() - first).days + 1)]


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """``days`` (in order) as runs of consecutive days, (first, last) each."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] + DAY == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _schema(table_name: str) -> pa.Schema:
    """What the cache holds of a table: its dedupe key columns and the event time."""
    return TABLES[table_name].projected((*SEEN_COLUMNS[table_name], "event_time"))


def _by_day(rows: pa.Table | None) -> dict[date, pa.Table]:
    """Rows split by UTC event day."""
    if rows is None or rows.num_rows == 0:
        return {}
    days = utc_days(rows.column("event_time"))
    bounds = pc.min_max(days).as_py()
    if bounds["min"] is not None and bounds["min"] == bounds["max"] and not days.null_count:
        return {bounds["min"]: rows}  # one day (a batch's usual): no filtered copy of it
    return {
        day: rows.filter(pc.equal(days, pa.scalar(day, pa.date32())))
        for day in pc.unique(days).to_pylist()
        if day is not None
    }
