"""Arrow helpers the kernels share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def utc_days(times: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The UTC day (``date32``) of each instant of a timestamp column: ``pc.cast(times,
    pa.date32())``. Cast from a zoned type Arrow looks each value up in the zone's rules
    (≈ 18 ms a million values, UTC too); a UTC column's values are its wall time already, so
    it is read as a naive one (≈ 1.2 ms). Another zone's column is cast as it is (its local
    days).

    >>> from datetime import datetime, UTC
    >>> utc_days(pa.array([datetime(2026, 12, 7, 23, 59, tzinfo=UTC), None])).to_pylist()
    [datetime.date(2026, 12, 7), None]
    """
    kind = times.type
    if pa.types.is_timestamp(kind) and kind.tz in _UTC_NAMES:
        times = times.cast(pa.timestamp(kind.unit))
    return pc.cast(times, pa.date32())


_UTC_NAMES = frozenset({"UTC", "utc", "Etc/UTC", "+00:00", "Z"})


def chunks_of(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    """A column's chunks: a chunked array's, or an array as its one chunk.

    >>> [len(c) for c in chunks_of(pa.chunked_array([[1], [2, 3]]))], len(chunks_of(pa.array([1]))[0])
    ([1, 2], 1)
    """
    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def joined(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one array: a chunked array's one chunk as it is, several joined (its
    ``combine_chunks`` copies even one chunk: a piece's user agents are ≈ 6 MB).

    >>> column = pa.chunked_array([["a", "b"]])
    >>> joined(column).buffers()[2].address == column.chunk(0).buffers()[2].address
    True
    >>> joined(pa.chunked_array([["a"], ["b"]])).to_pylist()
    ['a', 'b']
    """
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def spread(values: pa.Array | pa.ChunkedArray, index: np.ndarray, length: int) -> pa.Array:
    """``values``, computed for the rows ``index`` of a column of ``length`` rows, put back
    at those rows; null at every other row. Kernels work on the few rows that need a costly
    step (an engine query, a hash) and spread the answers back with this.

    >>> spread(pa.array(["a", "b"]), np.array([3, 1]), 4).to_pylist()
    [None, 'b', None, 'a']
    """
    position = np.full(length, -1, dtype=np.int64)
    position[index] = np.arange(len(index))
    taken = pc.take(values, pa.array(position, mask=position < 0))
    return taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken


def replaced(
    column: pa.Array | pa.ChunkedArray, index: np.ndarray, values: pa.Array | pa.ChunkedArray
) -> pa.Array | pa.ChunkedArray:
    """``column`` with its rows ``index`` replaced by ``values`` (one each, in that order):
    what a costly step computed for the few rows a quicker one left undecided.

    >>> replaced(pa.array(["a", "b", "c"]), np.array([2, 0]), pa.array(["z", "x"])).to_pylist()
    ['x', 'b', 'z']
    """
    mask = np.zeros(len(column), dtype=bool)
    mask[index] = True
    return pc.if_else(pa.array(mask), spread(values, index, len(column)), column)


# The type of a reasons column (what DuckDB's VARCHAR[] comes back as in Arrow).
LABEL_LISTS = pa.list_(pa.field("l", pa.string()))

Label: TypeAlias = str | pa.Array | pa.ChunkedArray


def labels_where(
    conditions: Sequence[tuple[pa.Array | pa.ChunkedArray, Label]], length: int
) -> pa.ListArray:
    """Per row, the labels of the ``conditions`` that hold for it, in their order; a null
    condition does not hold (SQL's ``list_filter([CASE WHEN c THEN label END, …], r -> r IS
    NOT NULL)``, without an engine query to plan). A label is a text, or a column giving
    each row its own (a row whose own label is null gets none).

    >>> held = [(pa.array([True, None, False]), "a"), (pa.array([True, True, False]), pa.array(["x", "y", "z"]))]
    >>> labels_where(held, 3).to_pylist()
    [['a', 'x'], ['y'], []]
    """
    holds = []
    for condition, label in conditions:
        if not isinstance(label, str):  # a null label is no label, as in the SQL
            condition = pc.and_kleene(condition, pc.is_valid(label))
        holds.append(pc.fill_null(condition, False))
    # Few rows have any label (a piece's rejected records): the conditions are joined by
    # Arrow's bitmaps, and only the rows where one holds are made a rows × conditions
    # matrix — one for every row, filled column by column, cost five times the rest.
    labelled = np.zeros(0, dtype=np.int64)
    if holds and length:
        some = holds[0]
        for hold in holds[1:]:
            some = pc.or_(some, hold)
        labelled = np.flatnonzero(some.to_numpy(zero_copy_only=False))
    held = np.empty((len(labelled), len(holds)), dtype=bool)
    if len(labelled):
        at_labelled = pa.array(labelled)
        for j, hold in enumerate(holds):
            held[:, j] = hold.take(at_labelled).to_numpy(zero_copy_only=False)
    found, columns = np.nonzero(held)  # row by row, each row's in the conditions' order
    rows = labelled[found]
    offsets = np.zeros(length + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=length), out=offsets[1:])
    labels = np.empty(len(rows), dtype=object)
    for j, (_, label) in enumerate(conditions):
        at = np.flatnonzero(columns == j)
        if not len(at):
            continue
        labels[at] = label if isinstance(label, str) else label.take(rows[at]).to_pylist()
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(labels, pa.string()), type=LABEL_LISTS
    )


def take_ascending(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table.take(rows)`` for ascending row numbers, chunk by chunk.

    Arrow's take from a column of several chunks first joins them into one — a copy of the
    whole column to pick a few rows: from a day of committed keys kept in a mapped file (5
    record batches of 1 M keys) a lookup of 2,000 rows cost 31-189 ms, and read every page
    of the file; chunk by chunk it costs 1 ms and reads the pages of those rows.

    >>> t = pa.Table.from_batches([pa.record_batch({"a": [0, 1, 2]}), pa.record_batch({"a": [3, 4]})])
    >>> take_ascending(t, np.array([1, 3, 4])).column("a").to_pylist()
    [1, 3, 4]
    """
    rows = np.asarray(rows, dtype=np.int64)
    return pa.Table.from_arrays(
        [column_ascending(column, rows) for column in table.columns], schema=table.schema
    )


def column_ascending(column: pa.Array | pa.ChunkedArray, rows: np.ndarray) -> pa.ChunkedArray:
    """``column.take(rows)`` for ascending row numbers, chunk by chunk (:func:`take_ascending`):
    a piece's few rejected texts out of its segments' chunks without a copy of all of them.

    >>> column_ascending(pa.chunked_array([["a", "b"], ["c"]]), np.array([0, 2])).to_pylist()
    ['a', 'c']
    """
    rows = np.asarray(rows, dtype=np.int64)
    chunks = chunks_of(column)
    starts = np.cumsum([0, *(len(chunk) for chunk in chunks)])
    cuts = np.searchsorted(rows, starts)
    return pa.chunked_array(
        [
            chunk.take(pa.array(rows[low:high] - start))
            for chunk, start, low, high in zip(
                chunks, starts[:-1], cuts[:-1], cuts[1:], strict=True
            )
            if high > low
        ],
        column.type,
    )


def spread_ascending(column: pa.Array | pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``column`` at the ascending ``rows``, null at every other row: the rows a kernel keeps
    a value for (a rejected record's raw text), without :func:`spread`'s take over a column of
    several chunks, which joins them all first, nor an ``if_else``, whose output Arrow sizes
    for every row's value (a piece's whole text, ≈ 50 MB, to keep a few records').

    >>> spread_ascending(pa.chunked_array([["a", "b"], ["c"]]), np.array([1, 2])).to_pylist()
    [None, 'b', 'c']
    """
    return spread(column_ascending(column, rows), rows, len(column))


def holds_byte_at_most(values: pa.Array | pa.ChunkedArray, ceiling: int, also: int) -> np.ndarray:
    """Per row of a string column: whether its UTF-8 holds a byte ``<= ceiling`` or equal to
    ``also``; False for a null. For ASCII bytes this is what a regex character class of
    them answers (every byte of a multi-byte character is 0x80 or more), found by one scan
    of the column's bytes instead of a regex run per value (≈ 10x less).

    >>> holds_byte_at_most(pa.array(["ab", "a b", None, "é\\x7f"]), 0x20, 0x7F).tolist()
    [False, True, False, True]
    """
    parts = [_bytes_at_most(chunk, ceiling, also) for chunk in chunks_of(values)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def _bytes_at_most(chunk: pa.Array, ceiling: int, also: int) -> np.ndarray:
    offsets, data = text_bytes(chunk)
    found = np.zeros(len(chunk), dtype=bool)
    if len(data) and _some_byte(data, ceiling, also):
        at = np.flatnonzero((data <= ceiling) | (data == also)) + offsets[0]
        found[np.searchsorted(offsets, at, side="right") - 1] = True
    if chunk.null_count:  # a null slot's bytes, if it has any, are not a value's
        found &= chunk.is_valid().to_numpy(zero_copy_only=False)
    return found


def _some_byte(data: np.ndarray, ceiling: int, also: int) -> bool:
    """Whether some byte is ``<= ceiling`` or ``also``, by reductions over the bytes: the
    masks of every byte and their positions cost ≈ 10x more, for the columns (ids) that
    nearly never hold one.

    >>> _some_byte(np.frombuffer(b"ab\x7f", np.uint8), 0x20, 0x7F), _some_byte(np.frombuffer(b"ab", np.uint8), 0x20, 0x7F)
    (True, False)
    """
    if data.min() <= ceiling:
        return True
    if also == 0x7F:  # int8's largest value: the bytes' maximum as int8 says if one is there
        return bool(data.view(np.int8).max() == 0x7F)
    return bool((data == also).any())


def text_bytes(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string chunk's value offsets (``len(chunk) + 1`` of them, widened to int64) and the
    bytes they span (``data[k]`` is byte ``offsets[0] + k`` of the chunk's buffer), the
    bytes a numpy view of the buffer (no copy). A chunk of another type is cast to
    ``large_string`` first.

    >>> offsets, data = text_bytes(pa.array(["ab", "", "c"]).slice(1))
    >>> offsets.tolist(), bytes(data)
    ([2, 2, 3], b'c')
    """
    if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
        chunk = chunk.cast(pa.large_string())
    n = len(chunk)
    _, offset_buffer, data_buffer = chunk.buffers()
    if offset_buffer is None:  # an empty chunk may have no buffers at all
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(offset_buffer, dtype=width)[chunk.offset : chunk.offset + n + 1]
    offsets = offsets.astype(np.int64)
    if data_buffer is None or offsets[-1] == offsets[0]:
        return offsets, np.zeros(0, dtype=np.uint8)
    return offsets, np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]


def coded(indices: pa.Array, values: Sequence[str | None]) -> pa.DictionaryArray:
    """``values[i]`` for each index ``i`` of ``indices`` (null stays null), as a dictionary
    array: each distinct value once in its dictionary, a null value a null row — as
    ``pc.dictionary_encode`` of the texts would give, without the texts made first. For a
    few-valued column derived from another's distinct values (a user agent's browser):
    the rows move and are written as codes (``TableSpec.few_values``), never as texts.

    >>> coded(pa.array([2, 0, None, 1, 2]), ["b", None, "b"]).to_pylist()
    ['b', 'b', None, None, 'b']
    >>> coded(pa.array([2, 0, None, 1, 2]), ["b", None, "b"]).dictionary.to_pylist()
    ['b']
    """
    distinct: dict[str, int] = {}
    # (a code for no value at all: an index array of nulls alone)
    remap = np.array(
        [-1 if v is None else distinct.setdefault(v, len(distinct)) for v in values] or [-1],
        dtype=np.int32,
    )
    codes = remap[pc.fill_null(indices, 0).to_numpy(zero_copy_only=False)]
    missing = codes < 0
    if indices.null_count:
        missing |= pc.is_null(indices).to_numpy(zero_copy_only=False)
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, pa.int32(), mask=missing), pa.array(list(distinct), pa.string())
    )


def used_dictionaries(table: pa.Table) -> pa.Table:
    """``table`` with each dictionary column's dictionaries cut to the values its rows use.

    A slice of rows keeps its whole array's dictionary, and the Parquet writer writes a
    dictionary column's dictionary as it is: each day's file of a batch spanning 730 days
    carried the names of all the batch's 38,025 segments (``source_file``), 480 KB of a
    515 KB file. A dictionary of few values (:data:`SMALL_DICTIONARY`), or every value of
    which is used, is left as it is.

    >>> names = pa.array([f"n{i}" for i in range(1000)])
    >>> codes = pa.DictionaryArray.from_arrays(pa.array([2, None, 2]), names)
    >>> cut = used_dictionaries(pa.table({"x": codes})).column("x").chunk(0)
    >>> cut.dictionary.to_pylist(), cut.to_pylist()
    (['n2'], ['n2', None, 'n2'])
    """
    for position, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            cut = _used
        elif pa.types.is_map(field.type) and (
            pa.types.is_dictionary(field.type.key_type)
            or pa.types.is_dictionary(field.type.item_type)
        ):
            cut = _used_entries  # a map's keys and values handed over as codes
        else:
            continue
        column = table.column(position)
        chunks = [cut(chunk) for chunk in column.chunks]
        if any(new is not old for new, old in zip(chunks, column.chunks, strict=True)):
            table = table.set_column(position, field, pa.chunked_array(chunks, field.type))
    return table


# A dictionary of at most this many values is written whole: cutting one cost ≈ 50 µs a
# column a file (≈ 0.5 ms a file of a backfill's thousands), to spare a few hundred bytes.
SMALL_DICTIONARY = 256


def _used_entries(chunk: pa.MapArray) -> pa.MapArray:
    """A map array whose keys or values are codes over dictionaries of what its maps use
    (itself if they use all): a day's slice of a piece's targeting maps held the piece's
    every targeting value.

    >>> values = pa.DictionaryArray.from_arrays(pa.array(list(range(300))), [f"v{i}" for i in range(300)])
    >>> keys = pa.array(["k"] * 300)
    >>> maps = pa.MapArray.from_arrays(pa.array(range(301), pa.int32()), keys, values)
    >>> cut = _used_entries(maps.slice(7, 2))
    >>> cut.items.dictionary.to_pylist(), cut.to_pylist()
    (['v7', 'v8'], [[('k', 'v7')], [('k', 'v8')]])
    """
    offsets = chunk.offsets.to_numpy()
    start, end = int(offsets[0]), int(offsets[-1])
    entries = chunk.values.slice(start, end - start)  # (the child as a whole: not the slice's)
    keys, items = entries.field(0), entries.field(1)
    used_keys = _used(keys) if pa.types.is_dictionary(keys.type) else keys
    used_items = _used(items) if pa.types.is_dictionary(items.type) else items
    if used_keys is keys and used_items is items:
        return chunk
    return pa.MapArray.from_arrays(
        pa.array(offsets - start, pa.int32()),
        used_keys,
        used_items,
        mask=chunk.is_null() if chunk.null_count else None,
    )


def _used(chunk: pa.DictionaryArray) -> pa.DictionaryArray:
    """``chunk`` over a dictionary of the values its rows use (itself if all are)."""
    size = len(chunk.dictionary)
    if size <= SMALL_DICTIONARY:  # a few values more cost the file less than finding them
        return chunk
    indices = pc.fill_null(chunk.indices, 0).to_numpy(zero_copy_only=False)
    missing = pc.is_null(chunk).to_numpy(zero_copy_only=False) if chunk.null_count else None
    valid = indices if missing is None else indices[~missing]
    if size > 4 * len(valid):  # a day's few rows of a big dictionary: the codes they use
        codes = np.unique(valid)
        kept, remapped = pa.array(codes), np.searchsorted(codes, indices)
        remapped = np.minimum(remapped, max(len(codes) - 1, 0))  # (a null row's stray code)
    else:
        used = np.bincount(valid, minlength=size) > 0
        if used.all():
            return chunk
        kept, remapped = pa.array(np.flatnonzero(used)), (np.cumsum(used) - 1)[indices]
    return pa.DictionaryArray.from_arrays(
        pa.array(remapped.astype(indices.dtype), chunk.indices.type, mask=missing),
        chunk.dictionary.take(kept),
    )
