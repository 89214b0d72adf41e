"""Inflating bytes as far as they go: the output up to a damage or a cut, within a bound."""

from __future__ import annotations

import gzip
import zlib

from advertisex.formats.inflate import DEFLATE_WBITS, inflated_until_damage

TEXT = b"".join(b'{"user_id":"u%d","n":%d}\n' % (n % 97, n) for n in range(60_000))


def test_a_cut_stream_gives_the_text_up_to_the_cut() -> None:
    member = gzip.compress(TEXT, mtime=0)
    cut = inflated_until_damage(member[: len(member) // 2])
    assert TEXT.startswith(cut) and len(cut) > len(TEXT) // 3
    assert inflated_until_damage(member + member) == TEXT + TEXT  # members one after another


def test_a_corrupt_stream_gives_its_output_up_to_the_byte_at_fault() -> None:
    """zlib raises for the call that meets the damage and loses what it gave: fed in pieces
    halved down to the byte at fault, the output before it is kept."""
    member = bytearray(gzip.compress(TEXT, mtime=0))
    member[3000] ^= 0xFF  # zlib: "invalid distance too far back", nothing given in one call
    got = inflated_until_damage(bytes(member))
    assert len(got) > 10_000
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    before = b""
    for size in range(1, len(member)):  # what zlib gives byte by byte before it fails
        try:
            before += inflater.decompress(bytes(member[size - 1 : size]))
        except zlib.error:
            break
    assert got == before


def test_raw_deflate_and_the_bound() -> None:
    deflater = zlib.compressobj(wbits=DEFLATE_WBITS)
    raw = deflater.compress(TEXT) + deflater.flush()
    assert inflated_until_damage(raw, DEFLATE_WBITS) == TEXT
    assert len(inflated_until_damage(raw, DEFLATE_WBITS, limit=1000)) <= 1001
