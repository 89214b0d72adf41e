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
from typing import Any

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
    "adx_newlines",
    "adx_plain_instants",
    "adx_plain_numbers",
    "adx_double_texts",
    "adx_url_authorities",
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
    hash_texts = function(*_TEXT_HASHES)
    if hash_texts is None:
        return None
    hashes = np.empty(len(texts), dtype=np.uint64)
    at = 0
    for part in _plain_strings(texts):
        offsets, data, valid, bit = string_buffers(part)
        out = hashes[at : at + len(part)]
        hash_texts(offsets, data, valid, bit, len(part), out.ctypes.data)
        at += len(part)
    return hashes


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
    read = function(*_PLAIN_INSTANTS)
    if read is None:
        return None
    micros = np.empty(len(texts), dtype=np.int64)
    decided = np.empty(len(texts), dtype=np.uint8)
    at = 0
    for chunk in _plain_strings(texts):
        offsets, data, valid, bit = string_buffers(chunk)
        read(
            offsets, data, valid, bit, len(chunk), micros[at:].ctypes.data, decided[at:].ctypes.data
        )
        at += len(chunk)
    return micros, decided.view(bool)


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
