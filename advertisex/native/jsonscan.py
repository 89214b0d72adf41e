"""The known fields of JSON objects in one native pass (``native/jsonscan.c``).

The impressions' standardize parsed every record with DuckDB's ``json_transform`` and then
scanned every record's bytes again for a bound on its keys (to find unknown fields): ≈ 1.2
µs of CPU a record, the largest single step of ``process``. The scanner does both in one
pass over the texts at ≈ 0.4 µs, and copies each known field's text straight into an
Arrow string column.

It only decides what it is sure DuckDB decides the same way (``jsonscan.c`` says what):
a record it leaves *undecided* — escapes, non-ASCII text, a field given as another type,
anything unusual — goes to DuckDB as before, so the rows are the same either way
(``tests/native/test_jsonscan.py`` compares both on hostile and random records). Where
the library was not built (:mod:`advertisex.native`) :func:`scan_objects` returns None and
the kernel parses with DuckDB alone. The JSON framer asks the same rules what each line is
(:func:`json_kinds`: one valid object, another valid value, a line cut short; the rest
DuckDB's), ``formats.jsonfmt``.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from advertisex import native
from advertisex.util.arrays import chunks_of

_SCANNED = 0
_MAX_FIELDS = 64  # the scanner marks the known keys it met in a 64-bit word
_PART_BYTES = 64 << 20  # texts scanned at a time (a piece is 32 MiB: one part)
_P, _I32, _I64 = native.POINTER, ctypes.c_int32, ctypes.c_int64
_SCAN = ("adx_scan_objects", _I64, (_P, _P, _I64, _P, _P, _P, _P, _I32, _P, _P, _P, _P, _P))
_KINDS = ("adx_json_kinds", _I64, (_P, _P, _I64, _P, _P))
# What adx_json_kinds says of a text (jsonscan.c).
OBJECT, UNDECIDED, ANOTHER_VALUE, CUT = 0, 1, 2, 3


@dataclass(frozen=True)
class Scanned:
    """What the scanner found in each text of a column."""

    undecided: np.ndarray  # bool a row: left to DuckDB (its fields are null here)
    key_counts: np.ndarray  # int32 a row: the object's number of keys (0 where undecided)
    fields: dict[str, pa.ChunkedArray]  # each known field's text as given (null: absent)


@functools.cache
def _keys(
    fields: tuple[str, ...], numbers: frozenset[str]
) -> tuple[object, np.ndarray, np.ndarray]:
    encoded = [name.encode() for name in fields]
    names = (ctypes.c_char_p * len(encoded))(*encoded)
    lengths = np.array([len(name) for name in encoded], dtype=np.int32)
    number_ok = np.array([name in numbers for name in fields], dtype=np.uint8)
    return names, lengths, number_ok


def scan_objects(
    texts: pa.Array | pa.ChunkedArray,
    fields: Sequence[str],
    numbers: Collection[str] = (),
    skip: np.ndarray | None = None,
) -> Scanned | None:
    """Each text's ``fields`` as ``json_transform(text, {field: 'VARCHAR', …})`` gives them,
    and its key count, for the texts the scanner decides; None without the scanner.

    ``numbers``: fields whose text is only read as a DOUBLE — a number with a fraction is
    given as written there ("1.50", where DuckDB renders "1.5"), and undecided elsewhere.
    ``skip``: rows to leave undecided (texts known not to be JSON already).

    >>> found = scan_objects(pa.array(['{"a": "x", "b": 2.50, "c": 1}', '{"a": "\\\\u00e9"}']),
    ...                      ("a", "b"), numbers=("b",))
    >>> found is None or (found.undecided.tolist(), found.key_counts.tolist(),
    ...     found.fields["a"].to_pylist(), found.fields["b"].to_pylist()) == (
    ...     [False, True], [3, 0], ["x", None], ["2.50", None])
    True
    """
    scan = native.function(*_SCAN)
    fields = tuple(fields)
    if scan is None or len(fields) > _MAX_FIELDS:
        return None
    keys = _keys(fields, frozenset(numbers))
    undecided, key_counts = [], []
    columns: list[list[pa.Array]] = [[] for _ in fields]
    start = 0
    for chunk in chunks_of(texts):
        rows = len(chunk)
        if not pa.types.is_string(chunk.type):
            return None  # (large_string: int64 offsets, which the scanner does not read)
        if rows == 0:
            continue
        # The chunk's value offsets, read in place (into its data buffer, from its first row).
        offsets = np.frombuffer(chunk.buffers()[1], np.int32)[
            chunk.offset : chunk.offset + rows + 1
        ]
        skipped = np.zeros(rows, dtype=np.uint8)
        if skip is not None:
            skipped |= skip[start : start + rows]
        if chunk.null_count:
            skipped |= chunk.is_null().to_numpy(zero_copy_only=False)
        # A part of the chunk's rows at a time: each field's output is given room for all
        # of the part's bytes (no text's field is longer than the text).
        marks = np.arange(offsets[0] + _PART_BYTES, offsets[-1], _PART_BYTES)
        bounds = sorted({0, rows, *np.searchsorted(offsets, marks).tolist()})
        for low, high in itertools.pairwise(bounds):
            size = int(offsets[high]) - int(offsets[low])
            part = _scan_part(scan, keys, chunk.slice(low, high - low), size, skipped[low:high])
            status, counts, arrays = part
            undecided.append(status != _SCANNED)
            key_counts.append(counts)
            for k, array in enumerate(arrays):
                columns[k].append(array)
        start += rows
    return Scanned(
        _joined(undecided, bool),
        _joined(key_counts, np.int32),
        {
            name: pa.chunked_array(parts, pa.string())
            for name, parts in zip(fields, columns, strict=True)
        },
    )


def _joined(parts: list[np.ndarray], kind: type) -> np.ndarray:
    """The parts' values one after the other (one part: itself, not a copy of it)."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=kind)


def _scan_part(
    scan: Callable[..., int],
    keys: tuple[object, np.ndarray, np.ndarray],
    texts: pa.Array,
    size: int,
    skipped: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, list[pa.Array]]:
    """The scanner over ``texts`` (``size`` bytes of text): their status, key counts and
    each field's column."""
    names, lengths, number_ok = keys
    rows, count = len(texts), len(lengths)
    status = np.empty(rows, dtype=np.uint8)
    counts = np.empty(rows, dtype=np.int32)
    # Arrow's pool, not NumPy's: its freed pages come back already touched.
    out_data = [pa.allocate_buffer(max(size, 1), resizable=True) for _ in range(count)]
    out_offsets = [pa.allocate_buffer(4 * (rows + 1)) for _ in range(count)]
    out_valid = [pa.allocate_buffer((rows + 7) // 8) for _ in range(count)]
    offsets, data, _, _ = native.string_buffers(texts)
    scan(
        data,
        offsets,
        rows,
        skipped.ctypes.data,
        names,
        lengths.ctypes.data,
        number_ok.ctypes.data,
        count,
        status.ctypes.data,
        counts.ctypes.data,
        native.addresses([b.address for b in out_data]),
        native.addresses([b.address for b in out_offsets]),
        native.addresses([b.address for b in out_valid]),
    )
    arrays = []
    for k in range(count):
        used = int(np.frombuffer(out_offsets[k], dtype=np.int32)[rows])
        out_data[k].resize(used)
        arrays.append(pa.StringArray.from_buffers(rows, out_offsets[k], out_data[k], out_valid[k]))
    return status, counts, arrays


def json_kinds(texts: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """What each text is, as the JSON framer asks (``adx_json_kinds``): :data:`OBJECT`,
    :data:`ANOTHER_VALUE` (valid JSON, not an object), :data:`CUT` (ends inside a string
    or a bracket: no parser reads it) or :data:`UNDECIDED` (DuckDB's to say); a null is
    UNDECIDED. None without the helpers (or for texts of 64-bit offsets).

    >>> kinds = json_kinds(pa.array(['{"a": 1}', '["x", 2]', '{"a": "x', '{"é": 1}']))
    >>> kinds is None or kinds.tolist() == [OBJECT, ANOTHER_VALUE, CUT, UNDECIDED]
    True
    """
    find = native.function(*_KINDS)
    if find is None:
        return None
    parts = []
    for chunk in chunks_of(texts):
        if not pa.types.is_string(chunk.type):
            return None
        kinds = np.empty(len(chunk), dtype=np.uint8)
        if len(chunk):
            # Nulls are skipped (left UNDECIDED); a chunk without any passes no mask.
            skipped = None
            if chunk.null_count:
                skipped = chunk.is_null().to_numpy(zero_copy_only=False).astype(np.uint8)
            offsets, data, _, _ = native.string_buffers(chunk)
            skip = skipped.ctypes.data if skipped is not None else None
            find(data, offsets, len(chunk), skip, kinds.ctypes.data)
        parts.append(kinds)
    return _joined(parts, np.uint8)
