"""Compiled helpers (``advertisex/native/*.c``), loaded with ctypes: the kernels' and the framers'.

Plain C with no Python API, built by the install as one optional extension
(``pyproject.toml``): where no C compiler was found it is missing, :func:`function` returns
None and each caller computes the same thing with Arrow and DuckDB, more slowly. ctypes
releases the GIL for every call, so the runner's piece threads run them at once.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from advertisex.util.arrays import chunks_of

LIBRARY = "advertisex.native._native"
POINTER = ctypes.c_void_p
# What the library holds (a library built from older sources lacks some: not used at all).
FUNCTIONS = (
    "adx_scan_objects",
    "adx_payload_row_hashes",
    "adx_text_hashes",
    "adx_hex_texts",
    "adx_sorted_starts",
    "adx_text_codes",
    "adx_map_codes",
    "adx_newlines",
    "adx_plain_instants",
    "adx_plain_numbers",
    "adx_double_texts",
    "adx_text_traits",
    "adx_url_authorities",
    "adx_plain_ipv4s",
    "adx_opens_containers",
    "adx_map_renders",
    "adx_avro_block",
    "adx_avro_starts",
    "adx_json_kinds",
    "adx_words_new",
    "adx_words_add",
    "adx_words_sizes",
    "adx_words_joined",
    "adx_words_filter",
    "adx_words_free",
)


@functools.cache
def _library() -> ctypes.CDLL | None:
    spec = importlib.util.find_spec(LIBRARY)
    if spec is None or spec.origin is None:
        return None
    try:
        library = ctypes.CDLL(spec.origin)
    except OSError:  # built for another platform, or half written
        return None
    return library if all(hasattr(library, name) for name in FUNCTIONS) else None


def available() -> bool:
    """Whether the compiled helpers were built with this install."""
    return _library() is not None


@functools.cache
def function(name: str, result: Any, arguments: tuple[Any, ...]) -> Callable[..., Any] | None:
    """The library's function ``name`` with its C signature, or None without the library."""
    library = _library()
    found = getattr(library, name, None) if library is not None else None
    if found is None:
        return None
    found.restype = result
    found.argtypes = list(arguments)
    return found


def addresses(items: Sequence[int]) -> ctypes.Array[ctypes.c_void_p]:
    """A C array of pointers (``T **``) to the given addresses."""
    return (POINTER * len(items))(*items)


def int64s(items: Sequence[int]) -> ctypes.Array[ctypes.c_int64]:
    return (ctypes.c_int64 * len(items))(*items)


def string_buffers(chunk: pa.Array) -> tuple[int, int, int, int]:
    """A string array's buffers as the C code reads them: the address of its first row's
    value offset (int32), of its data, of its validity bitmap (0: no nulls) and the bit
    of its first row in that bitmap."""
    validity, offsets, data = chunk.buffers()
    return (
        offsets.address + 4 * chunk.offset,
        data.address if data is not None else 0,
        validity.address if validity is not None and chunk.null_count else 0,
        chunk.offset,
    )


_TEXT_HASHES = (
    "adx_text_hashes",
    None,
    (POINTER, POINTER, POINTER, ctypes.c_int64, ctypes.c_int64, POINTER),
)
_CAST_ROWS = 1 << 20  # a column not in plain strings is read as them this many rows at a time


def text_hashes(texts: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Each text's XXH3-64 in one pass over its bytes (a null's: XXH3 of "" seeded 1), or
    None without the library. Large strings and dictionaries are read as plain text first,
    so a text's hash depends on its bytes alone, whatever its array's layout."""
    hashes = _per_text(_TEXT_HASHES, texts, np.uint64)
    return None if hashes is None else hashes[0]


_SORTED_STARTS = (
    "adx_sorted_starts",
    None,
    (POINTER, ctypes.c_int64, POINTER, ctypes.c_int64, POINTER),
)


def sorted_starts(ordered: np.ndarray, needles: np.ndarray) -> np.ndarray | None:
    """``np.searchsorted(ordered, needles, "left")`` for 64-bit hashes ``ordered`` and
    ``needles`` both ascending, each search started where the previous one ended
    (``payload.c``); None without the library.

    >>> found = sorted_starts(np.array([2, 5, 9], np.uint64), np.array([1, 5, 6, 10], np.uint64))
    >>> found is None or found.tolist() == [0, 1, 2, 3]
    True
    """
    starts_of = function(*_SORTED_STARTS)
    if starts_of is None:
        return None
    ordered = np.ascontiguousarray(ordered, dtype=np.uint64)
    needles = np.ascontiguousarray(needles, dtype=np.uint64)
    starts = np.empty(len(needles), dtype=np.int64)
    starts_of(
        ordered.ctypes.data, len(ordered), needles.ctypes.data, len(needles), starts.ctypes.data
    )
    return starts


_TEXT_CODES = (
    "adx_text_codes",
    ctypes.c_int64,
    (POINTER, POINTER, ctypes.c_int64, POINTER, *(ctypes.c_int64,) * 3, POINTER, POINTER),
)
# Distinct texts past which a column is left to Arrow's hash kernel (each call's table of
# them, two slots a text, stays in the cache).
TEXT_CODES_MOST = 1 << 14


def text_codes(texts: pa.Array, most: int = TEXT_CODES_MOST) -> pa.DictionaryArray | None:
    """``pc.dictionary_encode(texts)`` of a string array of at most ``most`` distinct texts —
    the same codes, in the order the texts first appear, and the same dictionary — from one
    pass of ``payload.c`` (the 2 M benchmark's campaigns, creatives, devices, countries,
    placements, exchanges and domains: 123 ms by Arrow's hash kernel, 69 ms so); None
    without the library, for another type, or for more texts (left to Arrow: a column of
    many values stops the pass at its ``most``-th distinct text).

    >>> codes = text_codes(pa.array(["b", None, "a", "b"]))
    >>> codes is None or (codes.indices.to_pylist(), codes.dictionary.to_pylist())
    ([0, None, 1, 0], ['b', 'a'])
    """
    codes_of = function(*_TEXT_CODES)
    if codes_of is None or texts.type != pa.string():
        return None
    # The codes are null where the texts are: they share the texts' validity bitmap, so
    # they sit at the texts' offset in their own buffer.
    codes = np.empty(texts.offset + len(texts), dtype=np.int32)
    firsts = np.empty(min(most, len(texts)), dtype=np.int64)
    offsets, data, valid, bit = string_buffers(texts)
    size = texts.buffers()[2].size if data else 0  # the data buffer's (read 16 bytes at a time)
    found = codes_of(
        offsets,
        data,
        size,
        valid,
        bit,
        len(texts),
        most,
        codes[texts.offset :].ctypes.data,
        firsts.ctypes.data,
    )
    if found < 0:
        return None
    validity = texts.buffers()[0] if texts.null_count else None
    indices = pa.Array.from_buffers(
        pa.int32(), len(texts), [validity, pa.py_buffer(codes)], texts.null_count, texts.offset
    )
    dictionary = texts.take(pa.array(firsts[:found]))
    return pa.DictionaryArray.from_arrays(indices, dictionary, safe=False)  # codes in range


_MAP_CODES = ("adx_map_codes", ctypes.c_int64, (ctypes.c_int32, *(POINTER,) * 12))


def map_codes(maps: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray] | None:
    """(each map's code among the column's distinct maps, -1 for a null; the row where each
    distinct map first appears, ascending) for a column of maps of strings: two maps have
    one code exactly when they hold the same entries in the same order (``payload.c``
    compares the maps of one hash entry by entry). None without the library, or for
    another layout (large strings, an offset struct of entries).

    >>> m = pa.array([[("a", "1")], None, [("a", "1")], [], [("a", None)]], pa.map_(pa.string(), pa.string()))
    >>> [a.tolist() for a in map_codes(m)]
    [[0, -1, 0, 1, 2], [0, 3, 4]]
    """
    codes_of = function(*_MAP_CODES)
    kind = maps.type
    if codes_of is None or not (
        pa.types.is_map(kind) and kind.key_type == pa.string() and kind.item_type == pa.string()
    ):
        return None
    chunks = [chunk for chunk in chunks_of(maps) if len(chunk)]
    columns: list[list[int]] = [[] for _ in range(10)]
    for chunk in chunks:
        validity, offsets = chunk.buffers()[:2]
        if chunk.values.offset or offsets is None:
            return None
        keys, values = chunk.keys, chunk.items
        key_offsets, key_data, _, _ = string_buffers(keys)
        value_offsets, value_data, value_valid, value_bit = string_buffers(values)
        row = (
            len(chunk),
            offsets.address + 4 * chunk.offset,
            validity.address if validity is not None and chunk.null_count else 0,
            chunk.offset,
            key_offsets,
            key_data,
            value_offsets,
            value_data,
            value_valid,
            value_bit,
        )
        for column, item in zip(columns, row, strict=True):
            column.append(item)
    codes = np.empty(len(maps), dtype=np.int32)
    firsts = np.empty(len(maps), dtype=np.int64)
    distinct = codes_of(
        len(chunks),
        int64s(columns[0]),
        addresses(columns[1]),
        addresses(columns[2]),
        int64s(columns[3]),
        addresses(columns[4]),
        addresses(columns[5]),
        addresses(columns[6]),
        addresses(columns[7]),
        addresses(columns[8]),
        int64s(columns[9]),
        codes.ctypes.data,
        firsts.ctypes.data,
    )
    if distinct < 0:
        raise MemoryError("no memory to find the distinct maps of a column")
    return codes, firsts[:distinct]


def _plain_strings(texts: pa.Array | pa.ChunkedArray) -> Iterator[pa.Array]:
    """``texts`` a chunk at a time as plain (32-bit offset) strings, what the helpers read:
    a chunk of large strings or a dictionary cast :data:`_CAST_ROWS` rows at a time."""
    for chunk in chunks_of(texts):
        if pa.types.is_string(chunk.type):
            yield chunk
        else:
            for start in range(0, len(chunk), _CAST_ROWS):
                yield chunk.slice(start, _CAST_ROWS).cast(pa.string())


_NEWLINES = ("adx_newlines", ctypes.c_int64, (POINTER, ctypes.c_int64, POINTER, ctypes.c_int64))
_LINE_BYTES_GUESS = 128  # room for a newline this many bytes, at first (NDJSON: 300-500)


def newlines(data: np.ndarray) -> np.ndarray | None:
    """The offsets of the newlines in ``data`` (bytes, one dimension), in order, or None
    without the library: ≈ 4× quicker than NumPy's comparison of every byte."""
    find = function(*_NEWLINES)
    if find is None:
        return None
    room = max(16, len(data) // _LINE_BYTES_GUESS)
    found = np.empty(room, dtype=np.int64)
    count = find(data.ctypes.data, len(data), found.ctypes.data, room)
    if count > room:  # shorter lines than guessed: again, with room for every one
        found = np.empty(count, dtype=np.int64)
        find(data.ctypes.data, len(data), found.ctypes.data, count)
    return found[:count]


_PLAIN_INSTANTS = (
    "adx_plain_instants",
    None,
    (POINTER, POINTER, POINTER, ctypes.c_int64, ctypes.c_int64, POINTER, POINTER),
)
_PLAIN_NUMBERS = (
    "adx_plain_numbers",
    None,
    (POINTER, POINTER, POINTER, ctypes.c_int64, ctypes.c_int64, POINTER, POINTER, POINTER, POINTER),
)


def plain_instants(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray] | None:
    """(microseconds since 1970, decided) of each text in the plain ISO spelling
    ``YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM]`` (``plaintext.c``); a text in another
    spelling, or a null, is not decided — the caller asks the engine. None without the
    library."""
    return _numbers_of_texts(_PLAIN_INSTANTS, texts)


def _numbers_of_texts(
    signature: tuple[Any, ...], texts: pa.Array | pa.ChunkedArray
) -> tuple[np.ndarray, np.ndarray] | None:
    """(number, decided) of each text, as the helper of ``signature`` reads a chunk's
    strings into one 64-bit number and a decided flag a row; None without the library."""
    read = _per_text(signature, texts, np.int64, np.uint8)
    return None if read is None else (read[0], read[1].view(bool))


def _per_text(
    signature: tuple[Any, ...], texts: pa.Array | pa.ChunkedArray, *dtypes: Any
) -> list[np.ndarray] | None:
    """An array of each of ``dtypes`` with a value a text, as the helper of ``signature``
    writes them from a chunk's strings (its buffers, its length, then an output pointer
    of each type), chunk after chunk; None without the library."""
    read = function(*signature)
    if read is None:
        return None
    outputs = [np.empty(len(texts), dtype=dtype) for dtype in dtypes]
    at = 0
    for chunk in _plain_strings(texts):
        read(*string_buffers(chunk), len(chunk), *(out[at:].ctypes.data for out in outputs))
        at += len(chunk)
    return outputs


def plain_numbers(
    texts: pa.Array | pa.ChunkedArray,
) -> tuple[np.ndarray, np.ndarray, pa.Array] | None:
    """(value, decided, the engine's text of the value) of each text in a plain decimal
    spelling of at most 15 significant digits (``plaintext.c``): the text a DOUBLE cast to
    VARCHAR gives, empty where not decided. None without the library."""
    read = function(*_PLAIN_NUMBERS)
    if read is None:
        return None
    values = np.empty(len(texts), dtype=np.float64)
    decided = np.empty(len(texts), dtype=np.uint8)
    rendered = []
    at = 0
    for chunk in _plain_strings(texts):
        inputs = (*string_buffers(chunk), len(chunk), values[at:].ctypes.data)
        write = functools.partial(read, *inputs, decided[at:].ctypes.data)
        # "5" is printed "5.0": two bytes more at most
        rendered.append(_written_strings(len(chunk), _data_bytes(chunk) + 3 * len(chunk), write))
        at += len(chunk)
    texts_out = pa.concat_arrays(rendered) if rendered else pa.array([], pa.string())
    return values, decided.view(bool), texts_out


def _written_strings(rows: int, capacity: int, write: Callable[[int, int], object]) -> pa.Array:
    """The string array of ``rows`` that ``write(offsets, data)`` (the addresses of its int32
    offsets, from 0, and of room for ``capacity`` bytes) fills in C."""
    offsets = pa.allocate_buffer(4 * (rows + 1))
    data = pa.allocate_buffer(capacity + 1, resizable=True)
    write(offsets.address, data.address)
    data.resize(int(np.frombuffer(offsets, dtype=np.int32)[rows]))
    return pa.StringArray.from_buffers(rows, offsets, data)


def _data_bytes(chunk: pa.Array) -> int:
    """The size of a string array's data buffer (at least its texts' bytes)."""
    data = chunk.buffers()[2]
    return data.size if data is not None else 0


_DOUBLE_TEXTS = (
    "adx_double_texts",
    None,
    (POINTER, POINTER, ctypes.c_int64, ctypes.c_int64, POINTER, POINTER, POINTER),
)
_DOUBLE_TEXT_BYTES = 24  # the longest text decided: "-0.000" and 15 digits, or 15 and ".0"


def double_texts(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray] | None:
    """(the engine's text of each double — a DOUBLE cast to VARCHAR —, decided) for the
    doubles whose shortest digits are at most 15, from 1e-4 up to below 1e15 (and zero);
    the text is empty where not decided or null (``plaintext.c``). None without the
    library."""
    write = function(*_DOUBLE_TEXTS)
    if write is None:
        return None
    decided = np.empty(len(values), dtype=np.uint8)
    texts = []
    at = 0
    for chunk in chunks_of(values):
        chunk = chunk.cast(pa.float64())
        validity, data = chunk.buffers()
        inputs = (
            data.address + 8 * chunk.offset if data is not None else 0,
            validity.address if validity is not None and chunk.null_count else 0,
            chunk.offset,
            len(chunk),
            decided[at:].ctypes.data,
        )
        room = _DOUBLE_TEXT_BYTES * len(chunk)
        texts.append(_written_strings(len(chunk), room, functools.partial(write, *inputs)))
        at += len(chunk)
    return (pa.concat_arrays(texts) if texts else pa.array([], pa.string())), decided.view(bool)


_TEXT_TRAITS = (
    "adx_text_traits",
    ctypes.c_int32,
    (POINTER, POINTER, POINTER, ctypes.c_int64, ctypes.c_int64, ctypes.c_int32),
)
# adx_text_traits' flags (plaintext.c): a text may need a trim; an empty text; a byte past
# ASCII; an ASCII upper-case, lower-case letter.
TRIM, EMPTY, NON_ASCII, UPPER, LOWER = 1, 2, 4, 8, 16


def text_traits(texts: pa.Array | pa.ChunkedArray, letters: bool = False) -> int | None:
    """What a string column holds, as flags of its valid texts: :data:`TRIM`, :data:`EMPTY`
    from its offsets and two bytes a text, and with ``letters`` :data:`NON_ASCII`,
    :data:`UPPER`, :data:`LOWER` from a pass over its bytes. None without the library or
    for another layout (large strings: the caller asks Arrow).

    >>> text_traits(pa.array(["ab", None, ""]), letters=True) == LOWER | EMPTY
    True
    >>> text_traits(pa.array(["A\u00a0"]), letters=True) == UPPER | NON_ASCII | TRIM
    True
    >>> text_traits(pa.array(["A\u00a0"])) == TRIM
    True
    """
    traits_of = function(*_TEXT_TRAITS)
    if traits_of is None or not pa.types.is_string(texts.type):
        return None
    traits = 0
    for chunk in chunks_of(texts):
        if len(chunk) == chunk.null_count:
            continue
        if chunk.buffers()[2] is None:  # (every text empty: no data buffer)
            traits |= EMPTY
            continue
        offsets, data, valid, bit = string_buffers(chunk)
        traits |= traits_of(offsets, data, valid, bit, len(chunk), int(letters))
    return traits


_PLAIN_IPV4S = (
    "adx_plain_ipv4s",
    None,
    (POINTER, POINTER, POINTER, ctypes.c_int64, ctypes.c_int64, POINTER, POINTER),
)


def plain_ipv4s(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray] | None:
    """(number, decided) of each text that is a plain dotted quad of decimal octets (one to
    three digits each: ``kernels.ivt._PLAIN_IPV4``), as ``kernels.ivt._ipv4_numbers`` reads
    it; any other text, or a null, is not decided (``plaintext.c``). None without the
    library.

    >>> found = plain_ipv4s(pa.array(["10.0.0.1", "1.2.3.4.5", None, "01.2.3.4"]))
    >>> found is None or [a.tolist() for a in found]
    [[167772161, 0, 0, 16909060], [True, False, False, True]]
    """
    return _numbers_of_texts(_PLAIN_IPV4S, texts)


_OPENS_CONTAINERS = (
    "adx_opens_containers",
    ctypes.c_int64,
    (POINTER, POINTER, POINTER, ctypes.c_int64, ctypes.c_int64, POINTER),
)


def opens_containers(texts: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Whether each text begins with "{" or "[" (false for a null), read from the first
    bytes in one pass (``plaintext.c``); None without the library.

    >>> found = opens_containers(pa.chunked_array([["{a", None, ""], ["x[", "[1]"]]))
    >>> found is None or found.tolist() == [True, False, False, False, True]
    True
    """
    opens = _per_text(_OPENS_CONTAINERS, texts, np.uint8)
    return None if opens is None else opens[0].view(bool)


_MAP_RENDERS = (
    "adx_map_renders",
    None,
    (
        POINTER,
        POINTER,
        ctypes.c_int64,
        ctypes.c_int64,
        POINTER,
        POINTER,
        POINTER,
        POINTER,
        POINTER,
        ctypes.c_int64,
        POINTER,
        POINTER,
        POINTER,
        POINTER,
        POINTER,
    ),
)


def map_renders(maps: pa.Array) -> tuple[pa.Array, pa.Array, np.ndarray] | None:
    """(text, JSON, decided) of each map of texts as the engine renders it
    (``CAST(m AS VARCHAR)``, ``to_json(m)``) where ``kernels.standardize._plain_rendering``
    would render it (``plaintext.c``); "" and not decided for any other map and a null
    one. None without the library, or for another type.

    >>> m = pa.array([[("age", "18-24"), ("i", "a,b")], None, [], [("k", None)]],
    ...     pa.map_(pa.string(), pa.string()))
    >>> found = map_renders(m)
    >>> found is None or [found[0].to_pylist(), found[1].to_pylist(), found[2].tolist()]
    [["{age=18-24, i='a,b'}", '', '{}', ''], ['{"age":"18-24","i":"a,b"}', '', '{}', ''], [True, False, True, False]]
    """
    render = function(*_MAP_RENDERS)
    string = pa.string()
    if render is None or maps.type != pa.map_(string, string):
        return None
    n = len(maps)
    validity, offset_buffer = maps.buffers()[:2]
    map_offsets = np.frombuffer(offset_buffer, dtype=np.int32)[maps.offset : maps.offset + n + 1]
    keys, items = maps.keys, maps.items  # (the whole children: map_offsets index them)
    first, last = int(map_offsets[0]), int(map_offsets[-1])
    key_offsets, key_data, _, _ = string_buffers(keys)
    item_offsets, item_data, item_valid, item_bit = string_buffers(items)
    spanned = 0  # the entries' bytes; an entry adds at most 7 of its own, a map 2
    for texts in (keys, items):
        if last > first:
            ends = np.frombuffer(texts.buffers()[1], dtype=np.int32)[texts.offset :]
            spanned += int(ends[last]) - int(ends[first])
    capacity = spanned + 7 * (last - first) + 2 * n + 1
    text_offsets, json_offsets = pa.allocate_buffer(4 * (n + 1)), pa.allocate_buffer(4 * (n + 1))
    text_data = pa.allocate_buffer(capacity, resizable=True)
    json_data = pa.allocate_buffer(capacity, resizable=True)
    decided = np.empty(n, dtype=np.uint8)
    render(
        map_offsets.ctypes.data,
        validity.address if validity is not None and maps.null_count else 0,
        maps.offset,
        n,
        key_offsets,
        key_data,
        item_offsets,
        item_data,
        item_valid,
        item_bit,
        text_offsets.address,
        text_data.address,
        json_offsets.address,
        json_data.address,
        decided.ctypes.data,
    )
    rendered = []
    for offsets, data in ((text_offsets, text_data), (json_offsets, json_data)):
        data.resize(int(np.frombuffer(offsets, dtype=np.int32)[n]))
        rendered.append(pa.StringArray.from_buffers(n, offsets, data))
    return rendered[0], rendered[1], decided.view(bool)


_URL_AUTHORITIES = (
    "adx_url_authorities",
    None,
    (POINTER, POINTER, POINTER, ctypes.c_int64, ctypes.c_int64, POINTER, POINTER),
)


def url_authorities(urls: pa.Array) -> pa.Array | None:
    """The authority part of each URL (``user@Host:8080`` of ``https://user@Host:8080/x``;
    a text without a scheme up to its first slash), "" for a null, by the compiled helpers
    (``plaintext.c``); None without the library."""
    find = function(*_URL_AUTHORITIES)
    if find is None:
        return None
    chunk = urls if pa.types.is_string(urls.type) else urls.cast(pa.string())
    inputs = (*string_buffers(chunk), len(chunk))
    return _written_strings(len(chunk), _data_bytes(chunk), functools.partial(find, *inputs))


_AVRO_BLOCK = (
    "adx_avro_block",
    ctypes.c_int64,
    (
        POINTER,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int32,
        POINTER,
        POINTER,
        POINTER,
        POINTER,
        ctypes.c_int32,
    ),
)
# The same first pass, with where each record starts written to one more argument.
_AVRO_STARTS = ("adx_avro_starts", ctypes.c_int64, (*_AVRO_BLOCK[2][:-1], POINTER))
# ``avro.c``'s kinds, the codes of its ``enum`` (a field of type null alone it refuses).
AVRO_KINDS = ("null", "boolean", "int", "long", "float", "double", "string", "map")
_AVRO_POINTERS = 7  # per field (avro.c's OUT)
_INT32_MAX = 2**31 - 1


class AvroField(NamedTuple):
    """One field of a flat Avro record as ``avro.c`` reads it: its kind (an index into
    :data:`AVRO_KINDS`), which branch of a union with null is the null (-1: not a union)
    and the Arrow type of its column (a ``long`` may be a timestamp's)."""

    kind: int
    null_branch: int
    type: pa.DataType


def avro_block(
    block: bytes | memoryview, count: int, fields: Sequence[AvroField]
) -> list[pa.Array] | None:
    """The columns of ``count`` records of ``fields`` in one inflated Avro block
    (``avro.c``); None where the block is not exactly such records (the caller reads it
    another way) or without the library."""
    reader = _AvroReader.of(block, count, fields)
    if reader is None or not reader.read(fill=False):  # checked and sized
        return None
    sizes, out = reader.sizes, reader.out
    # Each array the pass fills, as the Arrow buffer the column will hold (no copy): its
    # address is the buffer's (an array's ``ctypes.data`` costs ≈ 2 µs, a small container's
    # three dozen of them ≈ 0.07 ms).
    buffers = [
        [pa.py_buffer(array) if array is not None else None for array in held]
        for held in (
            _avro_buffers(f, count, sizes[3 * i : 3 * i + 3]) for i, f in enumerate(fields)
        )
    ]
    for i, held in enumerate(buffers):
        for j, buffer in enumerate(held):
            out[_AVRO_POINTERS * i + j] = buffer.address if buffer is not None else None
    if not reader.read(fill=True):  # filled
        return None
    return [_avro_array(f, count, held) for f, held in zip(fields, buffers, strict=True)]


def avro_fits(block: bytes | memoryview, count: int, fields: Sequence[AvroField]) -> bool:
    """Whether one inflated Avro block is exactly ``count`` records of ``fields``, as
    :func:`avro_block` would read them (its first pass alone); False without the library."""
    reader = _AvroReader.of(block, count, fields)
    return reader is not None and reader.read(fill=False)


def avro_record_starts(
    block: bytes | memoryview, count: int, fields: Sequence[AvroField]
) -> np.ndarray | None:
    """Where each of the ``count`` records of ``fields`` in one inflated Avro block starts
    (``count`` + 1 byte offsets, the last the block's length), read as :func:`avro_fits`
    reads them; None where the block is not exactly such records, or without the library."""
    reader = _AvroReader.of(block, count, fields, _AVRO_STARTS)
    if reader is None:
        return None
    starts = np.empty(count + 1, dtype=np.int64)
    return starts if reader.call(starts.ctypes.data) == 0 else None


class _AvroReader:
    """One call of ``adx_avro_block`` over a block: its inputs, the sizes its first pass
    counts and the column addresses its second fills (``out``, set by the caller)."""

    def __init__(
        self,
        read: Callable[..., int],
        block: bytes | memoryview,
        count: int,
        fields: Sequence[AvroField],
    ) -> None:
        self.source = np.frombuffer(block, dtype=np.uint8)  # kept: its address is passed
        n = len(fields)
        self.sizes = np.zeros(3 * n, dtype=np.int64)
        self.out = (POINTER * (_AVRO_POINTERS * n))()
        self._call = functools.partial(
            read,
            self.source.ctypes.data,
            len(self.source),
            count,
            n,
            (ctypes.c_int32 * n)(*(f.kind for f in fields)),
            (ctypes.c_int32 * n)(*(f.null_branch for f in fields)),
            self.sizes.ctypes.data,
            self.out,
        )

    @classmethod
    def of(
        cls,
        block: bytes | memoryview,
        count: int,
        fields: Sequence[AvroField],
        signature: tuple[Any, ...] = _AVRO_BLOCK,
    ) -> _AvroReader | None:
        """A reader of ``block`` by ``signature``'s function (``adx_avro_block``'s
        arguments, and one more of its own), or None without the library (or past int32
        offsets)."""
        read = function(*signature)
        if read is None or len(block) > _INT32_MAX:
            return None
        return cls(read, block, count, fields)

    def call(self, last: Any) -> int:
        """The function called with its last argument, ``last``: what it returns."""
        return int(self._call(last))

    def read(self, fill: bool) -> bool:
        """The first pass (check and size) or the second (fill): whether it read the block."""
        return self.call(1 if fill else 0) == 0


def _avro_buffers(field: AvroField, count: int, sizes: np.ndarray) -> list[np.ndarray | None]:
    """The arrays ``avro.c`` fills for a field, in its ``out`` order; bitmaps zeroed and
    offsets starting at 0."""
    bitmap = (count + 7) // 8
    held: list[np.ndarray | None] = [None] * _AVRO_POINTERS
    if field.null_branch >= 0:
        held[0] = np.zeros(bitmap, dtype=np.uint8)
    kind = AVRO_KINDS[field.kind]
    if kind == "boolean":
        held[1] = np.zeros(bitmap, dtype=np.uint8)
    elif kind in ("int", "float"):
        held[1] = np.empty(count, dtype=np.int32)
    elif kind in ("long", "double"):
        held[1] = np.empty(count, dtype=np.int64)
    elif kind == "string":
        held[1], held[2] = _offsets(count), np.empty(int(sizes[0]), dtype=np.uint8)
    elif kind == "map":
        entries = int(sizes[2])
        held[1] = _offsets(count)
        held[3], held[4] = _offsets(entries), np.empty(int(sizes[0]), dtype=np.uint8)
        held[5], held[6] = _offsets(entries), np.empty(int(sizes[1]), dtype=np.uint8)
    return held


def _offsets(rows: int) -> np.ndarray:
    offsets = np.empty(rows + 1, dtype=np.int32)
    offsets[0] = 0
    return offsets


def _avro_array(field: AvroField, count: int, held: list[pa.Buffer | None]) -> pa.Array:
    kind = AVRO_KINDS[field.kind]
    if kind == "map":
        entries = held[3].size // 4 - 1  # type: ignore[union-attr]  # int32 offsets
        keys = pa.StringArray.from_buffers(entries, held[3], held[4])
        values = pa.StringArray.from_buffers(entries, held[5], held[6])
        kind_of = field.type  # a pa.MapType
        items = pa.StructArray.from_arrays(
            [keys, values],
            fields=[kind_of.key_field, kind_of.item_field],  # type: ignore[attr-defined]
        )
        return pa.Array.from_buffers(
            field.type, count, [held[0], held[1]], null_count=-1, children=[items]
        )
    buffers = [held[0], held[1]] + ([held[2]] if kind == "string" else [])
    return pa.Array.from_buffers(field.type, count, buffers, null_count=-1)
