"""Deduplicate by event key, within the batch and against keys already committed.

The first occurrence wins — rows arrive in arrival order (segment, then position),
so "first" is simply the lowest row index — and every later one is a duplicate. A
duplicate whose payload hash differs from the kept row's is a *conflict*: same id,
different content. It is still dropped (the first is kept) but counted apart.

Only the key and the payload hash are compared (Arrow's hash kernels group the keys, no
sort), so wide rows and their raw text are never shuffled; the result is a keep-mask.

The rows a batch could repeat (committed keys of the horizon, keys of the batch's earlier
pieces) are many more than the batch's candidates: :class:`KeyIndex` keeps their keys'
64-bit hashes sorted, so only the few rows whose key hash a candidate shares go on to the
exact comparison (a hash collision only brings a row along that the comparison drops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex import native
from advertisex.util.arrays import joined, take_ascending

# Columns a dedupe needs from already-committed rows, per curated table.
SEEN_COLUMNS = {
    "curated.impressions": ("impression_id", "payload_hash"),
    "curated.clicks": ("event_id", "payload_hash"),
    "curated.conversions": ("event_id", "payload_hash"),
    "curated.bid_requests": ("exchange", "auction_id", "payload_hash"),
}


# The columns :func:`key_column` reads of each table: its key's, without the payload hash.
KEY_COLUMNS = {table: columns[:-1] for table, columns in SEEN_COLUMNS.items()}


def key_column(table_name: str, rows: pa.Table) -> pa.ChunkedArray | pa.Array:
    """The dedupe key per row; bids are unique per exchange + auction id."""
    if table_name == "curated.bid_requests":
        exchange = pc.fill_null(rows.column("exchange"), "")
        return pc.binary_join_element_wise(exchange, rows.column("auction_id"), "|")
    return rows.column(KEY_COLUMNS[table_name][0])


def key_hashes(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of each key: XXH3 by the compiled helpers (``native.text_hashes``), else
    Polars' own hash. Kept in memory only, never stored, and one process always hashes with
    the same one. (Polars is imported only for that fallback: its import, 0.2 s mostly under
    the GIL, fell in the first piece's dedupe turn, which every later piece waits for.)"""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.uint64)
    hashed = native.text_hashes(keys)
    if hashed is not None:
        return hashed
    import polars as pl

    series = pl.from_arrow(keys)
    assert isinstance(series, pl.Series)
    return series.hash(seed=0).to_numpy()


def distinct_hashes(hashes: np.ndarray) -> np.ndarray:
    """The distinct values of ``hashes``, sorted: what :meth:`KeyIndex.matching` looks for.
    ``np.unique`` does the same but ~100× slower on 64-bit hashes (NumPy 2.4: 0.5 s for
    550 k of them, where a sort takes 3 ms).

    >>> distinct_hashes(np.array([3, 1, 3, 2], dtype=np.uint64)).tolist()
    [1, 2, 3]
    """
    return distinct_sorted(np.sort(hashes))


def distinct_sorted(ordered: np.ndarray) -> np.ndarray:
    """The distinct values of ``ordered`` (sorted already), sorted."""
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def kept_order(
    order: np.ndarray, ordered: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """From the argsort ``order`` of a batch's key hashes (``ordered``: them sorted), that
    of the rows ``keep`` holds, numbered among themselves, and their hashes sorted: what
    :meth:`KeyIndex.sorted_by` takes for those rows, without sorting them again.

    >>> kept_order(np.array([2, 0, 1]), np.array([1, 5, 9], dtype=np.uint64), np.array([True, False, True]))
    (array([1, 0]), array([1, 5], dtype=uint64))
    """
    in_order = keep[order]
    number = np.cumsum(keep) - 1  # each row's number among the kept ones
    return number[order[in_order]], ordered[in_order]


FEW_CHUNKS = 64  # a take from this many chunks costs a fraction of a millisecond


class KeyIndex:
    """``rows`` findable by key: the keys' hashes sorted once, so the rows whose key is
    among a batch's candidates are found by binary search instead of a join of all rows.

    >>> index = KeyIndex(pa.table({"k": ["a", "b", "c"]}), key_hashes(pa.array(["a", "b", "c"])))
    >>> index.matching(distinct_hashes(key_hashes(pa.array(["c", "x"])))).column("k").to_pylist()
    ['c']
    """

    def __init__(self, rows: pa.Table, hashes: np.ndarray) -> None:
        order = np.argsort(hashes)
        self._index(rows, order, hashes[order])

    @classmethod
    def sorted_by(cls, rows: pa.Table, order: np.ndarray, sorted_hashes: np.ndarray) -> KeyIndex:
        """``KeyIndex(rows, hashes)`` where ``order`` sorts the rows' key hashes into
        ``sorted_hashes`` already (:func:`kept_order`)."""
        index = cls.__new__(cls)
        index._index(rows, order, sorted_hashes)
        return index

    def _index(self, rows: pa.Table, order: np.ndarray, sorted_hashes: np.ndarray) -> None:
        """``order``: the row numbers that sort the rows' key hashes into ``sorted_hashes``."""
        # One chunk per column: a take from a table of many chunks (the batches merged
        # into a part) costs time in proportion to the chunks, even for no rows — a
        # part of the committed keys grew by a chunk a micro-batch, and so did every
        # lookup's time (12 ms for a take from 2,000 chunks, 0.01 ms from one). Rows of a
        # few chunks a column (a stored part's) are kept as they are, not copied.
        few = all(column.num_chunks <= FEW_CHUNKS for column in rows.columns)
        self.rows = rows if few else rows.combine_chunks()
        self._order, self._sorted = order, sorted_hashes

    def __len__(self) -> int:
        return self.rows.num_rows

    def positions(self, hashes: np.ndarray) -> np.ndarray:
        """Row numbers (ascending) whose key hash is one of ``hashes`` (sorted, unique:
        :func:`distinct_hashes`)."""
        if len(self._sorted) == 0 or len(hashes) == 0:
            return np.zeros(0, dtype=np.int64)
        # Where each hash would go; only those found there are searched for their end too
        # (a repeat is rare: the second search over every hash was half of the lookups).
        low = native.sorted_starts(self._sorted, hashes)
        if low is None:
            low = np.searchsorted(self._sorted, hashes, "left")
        found = _found_at(self._sorted, hashes, low)
        if not found.any():
            return np.zeros(0, dtype=np.int64)
        low = low[found]
        counts = np.searchsorted(self._sorted, hashes[found], "right") - low
        starts = np.repeat(low, counts)
        steps = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.sort(self._order[starts + steps])

    def matching(self, hashes: np.ndarray) -> pa.Table:
        """The rows whose key hash is one of ``hashes`` (sorted, unique: :func:`distinct_hashes`) — a
        superset of those whose key is."""
        positions = self.positions(hashes)
        if len(positions) == 0:  # most parts, for most lookups
            return self.rows.slice(0, 0)
        return take_ascending(self.rows, positions)  # not a copy of every chunk first

    @classmethod
    def merged(cls, parts: list[KeyIndex], store: Store | None = None) -> KeyIndex:
        """One index over the rows of ``parts`` (all of one schema), in their order; its
        rows kept where ``store`` puts them (default: in memory)."""
        rows = pa.concat_tables([p.rows for p in parts])
        # Each part's hashes are sorted already: a stable sort of the parts' sorted runs
        # one after the other is a merge (numpy's timsort finds the runs), not a sort of
        # every hash again — in a piece's dedupe turn, which the other pieces wait for.
        starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
        runs = np.concatenate([p._sorted for p in parts])
        merge = np.argsort(runs, kind="stable")
        order = np.concatenate([p._order + start for p, start in zip(parts, starts, strict=True)])
        keep = store or IN_MEMORY
        return cls.sorted_by(keep(rows), *keep.arrays(order[merge], runs[merge]))

    def hashes(self) -> np.ndarray:
        """The rows' key hashes, in row order."""
        hashes = np.empty_like(self._sorted)
        hashes[self._order] = self._sorted
        return hashes


# Rows past which two parts are not merged: a merge copies both, so merging parts of any
# size made the committed keys of a backlog (a 10 M-event day: 5.4 M impression keys and
# 4.4 M bid keys, 69-78 bytes each) briefly take twice their memory at each batch's start.
# A lookup costs a binary search per part, so a few parts more cost nothing.
MERGED_ROWS_MAX = 1 << 20


class Store(Protocol):
    """Where an index's rows and its arrays (sorted key hashes, their rows' order: 16 bytes
    a row) are kept: each call returns the same data, held where it chooses — a runner maps
    them from a file (``advertisex.runners.committed.MappedRows``), so that a day of
    committed keys takes pages of the page cache, not the process's heap."""

    def __call__(self, rows: pa.Table) -> pa.Table: ...

    def arrays(self, order: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class _InMemory:
    def __call__(self, rows: pa.Table) -> pa.Table:
        return rows

    def arrays(self, order: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return order, hashes


IN_MEMORY: Store = _InMemory()


def append_part(
    parts: list[KeyIndex],
    part: KeyIndex,
    merged_max: int = MERGED_ROWS_MAX,
    store: Store | None = None,
) -> list[KeyIndex]:
    """``parts`` with ``part`` after them; the last two merged while the newer one is at
    least half the older one's size and together they hold at most ``merged_max`` rows, so
    rows indexed part by part (batch by batch, piece by piece) stay in a few parts (about
    log2 of how many came, plus one per ``merged_max`` rows) and each row is re-indexed only
    a few times, never all of them at once. Merged rows are kept where ``store`` puts them."""
    parts = [*parts, part]
    while (
        len(parts) > 1
        and 2 * len(parts[-1]) >= len(parts[-2])
        and len(parts[-1]) + len(parts[-2]) <= merged_max
    ):
        parts[-2:] = [KeyIndex.merged(parts[-2:], store)]
    return parts


@dataclass(frozen=True)
class Duplicates:
    """Per candidate row: is it a repeat of an earlier or committed key, and is it a conflict."""

    is_duplicate: np.ndarray
    is_conflict: np.ndarray

    @property
    def count(self) -> int:
        return int(self.is_duplicate.sum())

    @property
    def conflicts(self) -> int:
        return int((self.is_duplicate & self.is_conflict).sum())


def find_duplicates(
    keys: pa.Array | pa.ChunkedArray,
    hashes: pa.Array | pa.ChunkedArray,
    seen_keys: pa.Array | pa.ChunkedArray | None = None,
    seen_hashes: pa.Array | pa.ChunkedArray | None = None,
    hashed: np.ndarray | None = None,
    order: np.ndarray | None = None,
) -> Duplicates:
    """Mark repeats among ``keys`` (in arrival order) and of keys already committed.

    ``seen_keys`` are committed rows, hence unique: each key is looked up among them, so
    the only state is the committed keys of the dedupe horizon, read per batch. Arrow's
    hash kernels group the keys (an engine query cost a few milliseconds of planning per
    call, more than the work on the few rows that usually get here). With
    ``hashed`` (the keys' :func:`key_hashes`), only the rows whose key hash another row
    or a committed key shares go through the engine: a key whose hash is nobody else's
    repeats nothing (almost every row of a batch); ``order``, their argsort when known.

    >>> d = find_duplicates(pa.array(["a", "a", "b"]), pa.array(["x", "y", "z"]))
    >>> d.is_duplicate.tolist(), d.count, d.conflicts
    ([False, True, False], 1, 1)
    """
    n = len(keys)
    if n == 0:
        return Duplicates(np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    if hashed is not None:
        return _shared_only(keys, hashes, seen_keys, seen_hashes, hashed, order)
    # Each key's first row, and its first row with a payload hash (what the first
    # occurrence is compared with, unless the key was committed: then the committed hash).
    encoded = pc.dictionary_encode(joined(keys))
    codes = pc.fill_null(encoded.indices, -1).to_numpy()
    keyed = codes >= 0  # a null key repeats nothing and conflicts with nothing
    if not keyed.any():
        return Duplicates(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
    first = _first_rows(codes, keyed, len(encoded.dictionary))
    hashes = joined(hashes)
    hashed_rows = keyed & pc.is_valid(hashes).to_numpy(zero_copy_only=False)
    first_hashed = _first_rows(codes, hashed_rows, len(encoded.dictionary))
    reference = hashes.take(_at(first_hashed, codes, keyed))
    is_dup = keyed & (np.arange(n) != first[np.maximum(codes, 0)])
    if seen_keys is not None and seen_hashes is not None and len(seen_keys):
        at_seen = pc.index_in(encoded.dictionary, value_set=joined(seen_keys).cast(keys.type))
        seen_row = pc.fill_null(at_seen, -1).to_numpy()[np.maximum(codes, 0)]
        seen_index = pa.array(seen_row, mask=~keyed | (seen_row < 0))
        seen_hash = joined(seen_hashes).cast(hashes.type).take(seen_index)
        is_dup |= pc.is_valid(seen_hash).to_numpy(zero_copy_only=False)
        reference = pc.coalesce(seen_hash, reference)
    differs = pc.fill_null(pc.not_equal(hashes, reference), False).to_numpy(zero_copy_only=False)
    return Duplicates(is_dup, differs & keyed)


def _first_rows(codes: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """Per code, the first of ``rows`` (a mask) holding it; -1 where none does.

    >>> _first_rows(np.array([1, 0, 1, 0]), np.array([True, False, True, True]), 3).tolist()
    [3, 0, -1]
    """
    first = np.full(count, -1, dtype=np.int64)
    at = np.flatnonzero(rows)[::-1]  # assigned last to first: the first one stays
    first[codes[at]] = at
    return first


def _at(first: np.ndarray, codes: np.ndarray, keyed: np.ndarray) -> pa.Array:
    """``first[code]`` of each row as take indices: null for rows without a key or a row."""
    index = np.where(keyed, first[np.maximum(codes, 0)], -1)
    return pa.array(index, mask=index < 0)


def _shared_only(
    keys: pa.Array | pa.ChunkedArray,
    hashes: pa.Array | pa.ChunkedArray,
    seen_keys: pa.Array | pa.ChunkedArray | None,
    seen_hashes: pa.Array | pa.ChunkedArray | None,
    hashed: np.ndarray,
    order: np.ndarray | None = None,
) -> Duplicates:
    """:func:`find_duplicates` asked of the rows whose key hash is shared alone (every row
    with a given key has its hash, so each key's first occurrence is among them, in
    the same order); the other rows are first occurrences of keys never seen."""
    n = len(keys)
    shared = _repeated(hashed) if order is None else _repeated_in_order(hashed, order)
    if seen_keys is not None and len(seen_keys):
        seen = distinct_hashes(key_hashes(seen_keys))
        # The few seen hashes looked up among the sorted candidates' where their order is
        # known, not every candidate's among them (a binary search each, in no order).
        shared |= _among(seen, hashed) if order is None else _among_ordered(seen, hashed, order)
    is_dup = np.zeros(n, dtype=bool)
    differs = np.zeros(n, dtype=bool)
    if shared.any():
        rows = np.flatnonzero(shared)
        index = pa.array(rows)
        found = find_duplicates(keys.take(index), hashes.take(index), seen_keys, seen_hashes)
        is_dup[rows] = found.is_duplicate
        differs[rows] = found.is_conflict
    return Duplicates(is_dup, differs)


def _repeated(hashes: np.ndarray) -> np.ndarray:
    """Which of ``hashes`` occur more than once.

    >>> _repeated(np.array([5, 1, 5, 2], dtype=np.uint64)).tolist()
    [True, False, True, False]
    """
    # The values that repeat (few) from a sort of the values, then each value looked up
    # among them: a sort of 64-bit values is ≈ 12× quicker than the stable argsort that
    # marked the rows directly.
    ordered = np.sort(hashes)
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return np.zeros(len(hashes), dtype=bool)
    return _among(distinct_hashes(ordered[1:][same]), hashes)


def _repeated_in_order(hashes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """:func:`_repeated` where ``order`` sorts ``hashes``: the rows of each run of equal
    values in sorted order, marked where they are (no sort, no search).

    >>> _repeated_in_order(np.array([5, 1, 5, 2], dtype=np.uint64), np.array([1, 3, 0, 2])).tolist()
    [True, False, True, False]
    """
    ordered = hashes[order]
    same = ordered[1:] == ordered[:-1]
    repeated = np.zeros(len(hashes), dtype=bool)
    if same.any():
        repeated[order[1:][same]] = True
        repeated[order[:-1][same]] = True
    return repeated


def _among(ordered: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in ``ordered`` (sorted, not empty): a binary search each.

    >>> _among(np.array([2, 5], dtype=np.uint64), np.array([5, 1, 9], dtype=np.uint64)).tolist()
    [True, False, False]
    """
    return _found_at(ordered, values, np.searchsorted(ordered, values))


def _among_ordered(ordered: np.ndarray, values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """:func:`_among` where ``order`` sorts ``values``: each of ``ordered`` (few) is found
    among ``values`` sorted, and the run of those equal to it marked where they are.

    >>> _among_ordered(np.array([2, 5], dtype=np.uint64), np.array([5, 1, 5, 9], dtype=np.uint64),
    ...     np.array([1, 0, 2, 3])).tolist()
    [True, False, True, False]
    """
    in_order = values[order]
    low = np.searchsorted(in_order, ordered, "left")
    counts = np.searchsorted(in_order, ordered, "right") - low
    marked = np.zeros(len(values), dtype=bool)
    steps = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    marked[order[np.repeat(low, counts) + steps]] = True
    return marked


def _found_at(ordered: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` is at its position ``at`` in ``ordered`` (where a binary
    search put it; past the end: not there)."""
    return ordered[np.minimum(at, len(ordered) - 1)] == values
