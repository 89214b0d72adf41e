"""Payload hashes: what tells a retry (same payload) from a conflicting repeat of an id.

Every standardized record has its *payload*: the normalized text of its fields
(:func:`payload_sql`, the time as epoch microseconds, nulls as ``\\x00``, fields joined
by ``\\x1f``), and carries ``payload_hash``, a hash of it (the text itself only where a
standardizer is asked for it). Dedupe compares the hashes of rows with the same key:
equal is a retry, different is a conflict.

The hash is *versioned*, and the version is visible in the value itself:

* version 2 (written now): ``x`` + 16 hex digits of XXH3-64 (a fast non-cryptographic
  hash — nothing here needs to resist an attacker: a collision can only make a
  conflicting repeat count as a retry, and both are dropped);
* version 1 (lakes written before it): 16 hex digits, the first half of the MD5.

Rows committed under version 1 keep deduping: a candidate whose key was committed with
a version-1 hash is compared by its version-1 hash (:func:`align`), computed for those
few rows only. Keys never change: ids of id-less records stay ``fp-`` + MD5 of the
payload without id (computed only for the records that need one), so a retry of one
is found whichever version committed it.

XXH3 comes from xxHash's own C code in the compiled helpers (:mod:`advertisex.native`;
each row joined and hashed in a buffer, the texts not kept: :func:`payload_hashes`), or
where they are missing from polars-hash (stable, vectorized hashes for Polars): the same
XXH3-64, seed 0. Not the engine's own ``hash()``: it may change between DuckDB versions,
which a stored hash must not.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex import native
from advertisex.util import engine
from advertisex.util.arrays import chunks_of, spread

SEPARATOR = "\x1f"
NULL = "\x00"
VERSION_2 = "x"  # first character of a version-2 hash; version-1 hashes are hex digits


def payload_sql(columns: list[str]) -> str:
    """SQL for the normalized payload text of ``columns`` (every value as text, nulls marked).

    >>> payload_sql(["a", "b"]) == "concat_ws('\\x1f', coalesce(CAST(a AS VARCHAR), '\\x00'), coalesce(CAST(b AS VARCHAR), '\\x00'))"
    True
    """
    return (
        f"concat_ws('{SEPARATOR}', "
        + ", ".join(f"coalesce(CAST({c} AS VARCHAR), '{NULL}')" for c in columns)
        + ")"
    )


def payload_text(columns: list[pa.Array | pa.ChunkedArray]) -> pa.Array | pa.ChunkedArray:
    r""":func:`payload_sql` over Arrow text columns (in that order): the same text, built by
    Arrow's kernel without a trip through the engine.

    >>> payload_text([pa.array(["a", None]), pa.array(["b", "c"])]).to_pylist()
    ['a\x1fb', '\x00\x1fc']
    """
    return pc.binary_join_element_wise(
        *columns, SEPARATOR, null_handling="replace", null_replacement=NULL
    )


_P, _I32, _I64 = native.POINTER, ctypes.c_int32, ctypes.c_int64
_ROW_HASHES = ("adx_payload_row_hashes", _I32, (_I32, _P, _P, _P, _P, _I64, _P, _I32, _P, _I32, _P))


def payload_hashes(columns: Sequence[pa.Array | pa.ChunkedArray]) -> pa.Array:
    r"""The :func:`payload_hash` of each row's ``payload_text(columns)``, without the texts:
    the compiled helper joins a row in a buffer of its own and hashes it there, so a batch's
    payloads (≈ 300 bytes an impression) are never written out — their fresh memory was
    most of what the texts cost (a page fault every 4 KiB). Rows whose text is wanted
    (an id-less record's fingerprint, a key committed under version 1) are joined by
    :func:`payload_text` when asked.

    >>> columns = [pa.array(["a", None]), pa.array(["b", "c"])]
    >>> payload_hashes(columns).to_pylist() == payload_hash(payload_text(columns)).to_pylist()
    True
    """
    hashes_of = native.function(*_ROW_HASHES)
    rows = len(columns[0]) if columns else 0
    if hashes_of is None or rows == 0 or not all(pa.types.is_string(c.type) for c in columns):
        return payload_hash(payload_text(list(columns)))
    separator, null = SEPARATOR.encode(), NULL.encode()
    values = np.empty(rows, dtype=np.uint64)
    for low, high in itertools.pairwise(_common_bounds(columns)):
        parts = [_one_chunk(column.slice(low, high - low)) for column in columns]
        if any(part.buffers()[1] is None for part in parts):  # no offsets: Arrow's join
            return payload_hash(payload_text(list(columns)))
        offsets, data, valid, bits = zip(
            *(native.string_buffers(part) for part in parts), strict=True
        )
        failed = hashes_of(
            len(parts),
            native.addresses(offsets),
            native.addresses(data),
            native.addresses(valid),
            native.int64s(bits),
            high - low,
            separator,
            len(separator),
            null,
            len(null),
            values[low:high].ctypes.data,
        )
        if failed:
            raise MemoryError("no memory to join a payload for its hash")
    return _hex(values)


def _common_bounds(columns: Sequence[pa.Array | pa.ChunkedArray]) -> list[int]:
    """Row numbers where any of ``columns`` starts a chunk (and 0 and the end): between two,
    every column is one chunk."""
    rows = len(columns[0])
    cuts = {0, rows}
    for column in columns:
        cuts.update(np.cumsum([len(chunk) for chunk in chunks_of(column)]).tolist())
    return sorted(cuts)


def _one_chunk(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.Array):
        return column
    chunks = [chunk for chunk in column.chunks if len(chunk)]
    return chunks[0] if len(chunks) == 1 else column.combine_chunks()


def payload_hash(payload: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Version-2 hash of each payload text: ``x`` + 16 hex digits of XXH3-64.

    >>> payload_hash(pa.array(["abc"])).to_pylist()
    ['x78af5f94892f3950']
    """
    # Polars (0.2 s to import) only without the helpers, or for a null payload (none is).
    hashed_natively = None if payload.null_count else native.text_hashes(payload)
    if hashed_natively is not None:
        return _hex(hashed_natively)
    import polars as pl
    import polars_hash as plh

    hashed = pl.DataFrame({"p": pl.from_arrow(payload)}).select(
        plh.col("p").nchash.xxh3_64().alias("h")
    )
    if hashed.to_series().null_count():  # only a null payload has no hash (none is null)
        digits = engine.run(
            f"SELECT '{VERSION_2}' || printf('%016x', h) AS h FROM hashed",
            hashed=hashed.to_arrow(),
        )
        return digits.column("h").combine_chunks()
    return _hex(hashed.to_series().to_numpy())


_HEX_TEXTS = ("adx_hex_texts", None, (_P, _I64, ctypes.c_uint8, _P))
# Each byte's two hex digits, as the two bytes of a little-endian uint16 (first digit first).
_HEX_PAIRS = np.array(
    [int.from_bytes(f"{b:02x}".encode(), "little") for b in range(256)], dtype="<u2"
)


def _hex(values: np.ndarray) -> pa.Array:
    """``x`` + 16 lower-case hex digits of each unsigned 64-bit value (printf ``%016x``):
    written by the compiled helpers (``adx_hex_texts``), else by NumPy — each byte, most
    significant first, looked up as its two digits at once (a digit at a time, sixteen
    passes of shifts and gathers, took 2.5 times as long); NumPy's ≈ 36 ns a value were
    ≈ 5 ms of each 140 k-bid piece's standardize.

    >>> _hex(np.array([0, 0x0123456789ABCDEF], dtype=np.uint64)).to_pylist()
    ['x0000000000000000', 'x0123456789abcdef']
    """
    n = len(values)
    offsets = np.arange(0, 17 * (n + 1), 17, dtype=np.int32)
    write = native.function(*_HEX_TEXTS)
    if write is not None:
        ordered = np.ascontiguousarray(values, dtype=np.uint64)
        data = pa.allocate_buffer(17 * n)
        write(ordered.ctypes.data, n, ord(VERSION_2), data.address)
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), data)
    text = np.empty((n, 17), dtype=np.uint8)
    text[:, 0] = ord(VERSION_2)
    most_significant_first = values.astype(">u8").view(np.uint8).reshape(n, 8)
    text[:, 1:] = _HEX_PAIRS[most_significant_first].view(np.uint8).reshape(n, 16)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


def legacy_hash(payload: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Version-1 hash of each payload text: the first 16 hex digits of its MD5.

    >>> legacy_hash(pa.array(["abc"])).to_pylist()
    ['900150983cd24fb0']
    """
    return pc.utf8_slice_codeunits(md5_hex(payload), 0, 16)


# Up to this many texts, hashlib's MD5 costs less than one engine query's fixed ≈ 1-2 ms
# (≈ 1 µs a text against the engine's ≈ 0.2): id-less records are a few in a segment.
_FEW = 2048


def md5_hex(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The MD5 of each text's UTF-8 bytes, 32 lowercase hex digits (the engine's ``md5``).

    >>> md5_hex(pa.array(["abc", None])).to_pylist()
    ['900150983cd24fb0d6963f7d28e17f72', None]
    """
    if len(texts) <= _FEW:
        import hashlib

        return pa.array(
            [
                None if t is None else hashlib.md5(t.encode(), usedforsecurity=False).hexdigest()
                for t in texts.to_pylist()
            ],
            pa.string(),
        )
    digits = engine.run("SELECT md5(p) AS h FROM t", t=pa.table({"p": texts}))
    return digits.column("h").combine_chunks()


def is_legacy(hashes: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Which hashes are version 1 (written before version 2 existed)."""
    return pc.invert(pc.starts_with(hashes, VERSION_2))


def align(
    keys: pa.Array | pa.ChunkedArray,
    hashes: pa.Array | pa.ChunkedArray,
    payloads: Callable[[np.ndarray], pa.Array | pa.ChunkedArray],
    seen_keys: pa.Array | pa.ChunkedArray | None,
    seen_hashes: pa.Array | pa.ChunkedArray | None,
) -> pa.Array | pa.ChunkedArray:
    """Candidate hashes comparable with the committed ones: a candidate whose key was
    committed with a version-1 hash gets its own version-1 hash (so do the batch's other
    rows of that key, which are compared with each other too); every other row keeps
    its version-2 hash. ``payloads(positions)`` gives the payload texts of those
    candidates, asked for only when some committed hash is version 1.

    >>> texts = pa.array(["abc", "d"])
    >>> align(pa.array(["k", "j"]), pa.array(["x1", "x2"]), lambda i: texts.take(pa.array(i)),
    ...       pa.array(["k"]), pa.array(["900150983cd24fb0"])).to_pylist()
    ['900150983cd24fb0', 'x2']
    """
    if seen_keys is None or seen_hashes is None or len(seen_hashes) == 0:
        return hashes
    old = is_legacy(seen_hashes)
    if not pc.any(old).as_py():
        return hashes
    legacy_keys = pc.filter(seen_keys, old)
    mask = pc.fill_null(pc.is_in(keys, value_set=pc.unique(legacy_keys)), False)
    if not pc.any(mask).as_py():
        return hashes
    index = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    legacy = legacy_hash(payloads(index))
    return pc.if_else(mask, spread(legacy, index, len(hashes)), hashes)
