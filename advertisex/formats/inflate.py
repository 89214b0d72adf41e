"""Inflating compressed bytes a producer chose: never past a bound, and as far as they go.

Light on purpose (zlib only): the CLI's source detection un-gzips a file's head with it
before anything heavy is imported.
"""

from __future__ import annotations

import zlib
from typing import Any

# A gzip'd segment may inflate to this many times its size (at least the floor): far above
# real data (gzip shrinks JSON 5-15×); more is a decompression bomb.
MAX_INFLATION = 200
INFLATE_FLOOR = 64 << 20
GZIP_MAGIC = b"\x1f\x8b"
GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib's window bits for a gzip member
DEFLATE_WBITS = -zlib.MAX_WBITS  # for a raw deflate stream (an Avro block's)

# Compressed bytes fed to zlib at a time by inflated_until_damage: a piece that fails is fed
# again in halves, from the inflater's state before it, down to the byte at fault.
_PIECE = 1 << 20


def inflate_limit(size: int) -> int:
    """The most bytes ``size`` compressed bytes may inflate to: :data:`MAX_INFLATION` times
    as many, at least :data:`INFLATE_FLOOR`."""
    return max(INFLATE_FLOOR, MAX_INFLATION * size)


def inflated_until_damage(data: bytes, wbits: int = GZIP_WBITS, limit: int | None = None) -> bytes:
    """What ``data`` inflates to (gzip members one after another, or a raw deflate stream)
    up to where it stops: its end, the byte where it is damaged or cut short, or ``limit``
    bytes (:func:`inflate_limit` of its size by default). zlib's own calls lose what the
    call that fails would have given; here the output up to the damage is kept.

    >>> import gzip
    >>> member = bytearray(gzip.compress(b"".join(b"line %d\\n" % n for n in range(9000))))
    >>> member[len(member) // 2] ^= 0xFF
    >>> inflated_until_damage(bytes(member))[:14]
    b'line 0\\nline 1\\n'
    """
    limit = inflate_limit(len(data)) if limit is None else limit
    out: list[bytes] = []
    size, at = 0, 0
    inflater = zlib.decompressobj(wbits)
    while at < len(data) and size <= limit:
        piece = data[at : at + _PIECE]
        inflater, part, whole = _fed(inflater, piece, limit - size + 1)
        out.append(part)
        size += len(part)
        if not whole or inflater.unconsumed_tail:  # damage, or past the limit
            break
        at += len(piece) - len(inflater.unused_data)
        if inflater.eof:
            if wbits != GZIP_WBITS or data[at : at + 2] != GZIP_MAGIC:
                break
            inflater = zlib.decompressobj(wbits)  # the next gzip member
    return b"".join(out)


def _fed(inflater: Any, chunk: bytes, room: int) -> tuple[Any, bytes, bool]:
    """(the inflater after, what it gave, whether it took ``chunk`` whole): ``chunk`` fed to
    a copy of ``inflater``, and where zlib fails, its halves, down to the byte at fault."""
    trial = inflater.copy()
    try:
        return trial, trial.decompress(chunk, room), True
    except zlib.error:
        if len(chunk) == 1:
            return inflater, b"", False
    half = len(chunk) // 2
    first, given, whole = _fed(inflater, chunk[:half], room)
    if not whole or first.eof:
        return first, given, False
    second, more, _ = _fed(first, chunk[half:], room - len(given))
    return second, given + more, False
