"""The words of a landing file, as an erasure searches it: what lets a later one skip it.

An erasure (:func:`formats.scrub.scrub`) rewrites a file only when its first, cheap test
passes: some spelling of an id (:func:`formats.scrub.needles_of`) is found among the bytes
it searches — the file's, what its gzip stream inflates to, its Avro blocks inflated — and,
when the file cannot be read in its format, the same bytes line by line. Nothing is
decoded before that test (an id written only as ``\\u0075\\u0031`` does not pass it), and
what it passes is what a summary must answer for: ``json`` arrays are framed again and
CSV fields unquoted after it, so a word there is not the file's word.

A file's *words* are the maximal runs of word characters of those bytes (the characters
that continue a word around an id, ``scrub._WORD``), kept once each: an occurrence of a
spelling lies over such runs — its inner runs are whole words of the file, its first run
ends one, its last run starts one, and a spelling of word characters only lies inside one
(``u1`` inside ``0u1``: an Avro string's length may be the byte before it). A file whose
words lack those of every spelling of every id cannot pass the test: nothing in it is
erased, and it need not be read (:func:`word_test`). A spelling without a word character
(an id of punctuation) rules out nothing: every file is then read.

Most landing bytes are JSON lines, read line by line: a line loses records only where it
holds a spelling as whole words, bounded on both sides (``scrub.by_lines``). Their
summary is a Bloom filter of their words (10 bits a word, ≈ 1 % read for nothing), a
tenth of the words' size; the others keep the words themselves, ``\\n``-separated with a
``\\n`` at each end, so that "ends a word" is ``run\\n`` and "a whole word" ``\\nrun\\n``.

Both are made by the compiled helpers (``native/words.c``: ≈ 1.5–2.5 ms of CPU a MB) where
they were built, else by NumPy and Arrow here (≈ 10): the same bytes either way.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.formats.bounded import gunzip_if_needed
from advertisex.formats.inflate import GZIP_MAGIC, inflate_limit
from advertisex.formats.scrub import _WORD_RUN_BYTES, Forgotten, _avro_blocks, by_lines, needles_of
from advertisex.native.words import distinct_words

# Which words a summary holds: another rule (another word, another cheap test) is another
# version, and a summary of an older one is read as none.
WORDS_VERSION = 1

# Bytes that continue a word (scrub._WORD), 1, and the others, 0: bytes.translate maps a
# segment through it at memory speed.
_WORD_BYTES = bytes(1 if _WORD_RUN_BYTES.fullmatch(bytes([b])) else 0 for b in range(256))
_IS_WORD = np.frombuffer(_WORD_BYTES, np.bool_)
# A text is tokenized this many bytes at a time (cut after a byte of no word): what it
# holds beside the text stays bounded, whatever the segment's size.
_PART = 8 << 20
_FEW = 8  # look-ups made one by one (word_test)
# What a summary is: its words themselves (any file), or a filter of them (a file read line
# by line, whose records go only where a line holds an id's spelling as whole words).
_WORDS, _FILTER = b"W", b"F"
_BITS_PER_WORD = 10  # with _PROBES probes: ≈ 1 % of the files without the word still read
_PROBES = 7
_MASK = (1 << 64) - 1
_MULTIPLIER = 0x100000001B3  # odd: a word's hash is sum(byte_j * M^j) mod 2^64


def words_of(data: bytes, container: str, searched: list[bytes] | None = None) -> bytes | None:
    """The words of a landing file of ``container`` (``json``, ``csv``, ``avro``), sorted,
    each once, ``\\n``-separated with a ``\\n`` at each end; None when the erasure reads it
    in a way these do not cover (a damaged gzip stream, whose rest is looked into: a gzip
    stream past the bounds, an Avro container that does not read as one). ``searched``: the
    texts the erasure's search of it read (``Scrubbed.searched``), not inflated again.

    The texts are those whose search decides: a gzip stream's output, not its deflated
    bytes, and an Avro file's blocks inflated, not its header nor its deflated blocks. The
    bytes as they are are searched only once those texts hold a spelling of an id (a file
    its format's reader refuses then is searched line by line), and a file whose reader
    refuses it whatever the ids has no summary: a spelling found there is in the words
    too."""
    if searched is not None:
        filtered = container != "avro" and by_lines(searched[0], container)
        return _summary(searched, filtered)
    plain = data
    if data.startswith(GZIP_MAGIC):
        try:
            plain, damage = gunzip_if_needed(data, inflate_limit(len(data)))
        except Exception:  # past the bound: scrub reads it otherwise
            return None
        if damage is not None:
            return None
    if container != "avro":
        return _summary([plain], by_lines(plain, container))
    try:
        blocks = _avro_blocks(plain)[-1]
    except Exception:  # not a container scrub reads block by block
        return None
    return _summary([raw for _, _, raw in blocks], False)


def lines_words_of(data: bytes) -> bytes | None:
    """The words of a file an erasure reads line by line as it is (``scrub.scrub_lines``:
    one set aside under ``landing/_unreadable``): a line loses itself only where it holds a
    spelling of an id as whole words, so a filter of the words of its bytes, as a JSON
    lines file's."""
    return _summary([data], True)


def _summary(texts: list[bytes], filtered: bool) -> bytes | None:
    """The summary of a file whose texts as searched are ``texts``, a filter of their words
    where the file is ``filtered`` (read line by line); None where memory for its words ran
    out (a summary only spares a read: the file is read again next time, not the erasure
    stopped)."""
    try:
        found = distinct_words(texts, _WORD_BYTES)
    except MemoryError:
        return None
    if found is not None:  # the compiled pass: the same bytes, ≈ 10× quicker
        with found:
            if filtered and found.longest <= _FILTERED_WORD:
                bits = _filter_bits(found.count)
                return _FILTER + struct.pack("<IB", bits, _PROBES) + found.filter(bits, _PROBES)
            try:
                return _WORDS + found.joined()
            except MemoryError:
                return None
    words = _unique_words(texts)
    if filtered and _longest(words) <= _FILTERED_WORD:
        return _FILTER + _filter_of(words)
    return _WORDS + _joined(words)


def _longest(words: pa.Array) -> int:
    return int(pc.max(pc.binary_length(words)).as_py() or 0) if len(words) else 0


def _unique_words(texts: Iterable[bytes]) -> pa.Array:
    """Every maximal run of word characters in ``texts``, once, sorted."""
    pieces = [piece for text in texts for piece in _pieces_of(text)]
    if not pieces:
        return pa.array([], pa.large_binary())
    # The runs between words are few distinct ones (`":"`, `,` …): told apart once unique,
    # by their first byte, rather than every other piece taken out of the text.
    unique = pc.unique(pa.chunked_array(pieces, pa.large_binary()))
    offsets = np.frombuffer(unique.buffers()[1], np.int64)[
        unique.offset : unique.offset + len(unique)
    ]
    first = np.frombuffer(unique.buffers()[2], np.uint8)[offsets]
    words = unique.filter(pa.array(_IS_WORD[first]))
    return words.take(pc.sort_indices(words))


def _pieces_of(text: bytes) -> list[pa.Array]:
    """``text`` cut where a run of word characters starts or ends, a part at a time."""
    found = []
    at = 0
    while at < len(text):
        end = _part_end(text, at)
        found.append(_pieces(text, at, end))
        at = end
    return found


def _part_end(text: bytes, at: int) -> int:
    """Where the part of ``text`` from ``at`` ends: after its last byte of no word, about
    :data:`_PART` bytes on, so that no run is cut (a longer run makes a longer part)."""
    end = at + _PART
    while end < len(text):
        is_word = np.frombuffer(text[at:end].translate(_WORD_BYTES), np.bool_)
        breaks = np.flatnonzero(~is_word)
        if len(breaks):
            return at + int(breaks[-1]) + 1
        end += _PART
    return len(text)


def _pieces(text: bytes, at: int, end: int) -> pa.Array:
    """``text[at:end]`` cut where a run of word characters starts or ends: an Arrow array
    over the text's bytes (no copy), runs of word characters and runs of others in turn."""
    is_word = np.frombuffer(text[at:end].translate(_WORD_BYTES), np.bool_)
    edges = np.flatnonzero(is_word[1:] != is_word[:-1]) + 1
    bounds = np.concatenate(([0], edges, [end - at])).astype(np.int64, copy=False)
    part = pa.py_buffer(memoryview(text)[at:end])
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(bounds) - 1, [None, pa.py_buffer(bounds), part]
    )


def _joined(words: pa.Array) -> bytes:
    """``words`` ``\\n``-separated, with a ``\\n`` at each end (no Python loop)."""
    offsets = np.frombuffer(words.buffers()[1], np.int64)[
        words.offset : words.offset + len(words) + 1
    ]
    data = words.buffers()[2]
    body = (
        np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
        if data is not None
        else np.zeros(0, np.uint8)
    )
    joined = np.full(len(body) + len(words) + 1, ord("\n"), np.uint8)
    # Each word moves on by one byte per word before it, and one for the leading newline.
    shift = np.repeat(np.arange(1, len(words) + 1, dtype=np.int64), np.diff(offsets))
    joined[np.arange(len(body), dtype=np.int64) + shift] = body
    return joined.tobytes()


def _filter_of(words: pa.Array) -> bytes:
    """A Bloom filter of ``words``: its size in bits and probes, then its bits. A word's
    probes come from :func:`_word_hashes` (plain arithmetic modulo 2^64, the same on every
    machine and in every version of every library: a filter outlives the process)."""
    bits = _filter_bits(len(words))
    present = np.zeros(bits, np.bool_)
    for first, step in _hashes_of(words):
        for probe in range(_PROBES):
            present[((first + np.uint64(probe) * step) & np.uint64(bits - 1)).astype(np.int64)] = (
                True
            )
    return struct.pack("<IB", bits, _PROBES) + np.packbits(present, bitorder="little").tobytes()


def _filter_bits(words: int) -> int:
    """The size in bits of the filter of that many words: a power of two, 1,024 at least."""
    return 1 << max(10, int(np.ceil(np.log2(max(1, words * _BITS_PER_WORD)))))


_BATCH_BYTES = 1 << 20  # bytes of words hashed at a time (8 bytes each while hashed)
# A file with a longer word keeps its words, not a filter (whose hashing holds 24 bytes
# a byte of the words hashed at once: a hostile file of one long word is no bomb).
_FILTERED_WORD = 1 << 16


def _hashes_of(words: pa.Array) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """(first probe, step) of each of ``words``, a batch at a time: :func:`_word_hashes`
    computed for all at once, from the prefix sums of their bytes times powers of M."""
    multiplier = np.uint64(_MULTIPLIER)
    inverse = np.uint64(pow(_MULTIPLIER, -1, 1 << 64))
    offsets_all = np.frombuffer(words.buffers()[1], np.int64)[
        words.offset : words.offset + len(words) + 1
    ]
    data_all = words.buffers()[2]
    at = 0
    while at < len(words):
        end = int(np.searchsorted(offsets_all, offsets_all[at] + _BATCH_BYTES, "right")) - 1
        end = min(max(end, at + 1), len(words))
        offsets = offsets_all[at : end + 1]
        at = end
        body = np.frombuffer(data_all, np.uint8)[offsets[0] : offsets[-1]].astype(np.uint64)
        starts, ends = offsets[:-1] - offsets[0], offsets[1:] - offsets[0]
        with np.errstate(over="ignore"):  # arithmetic modulo 2^64, on purpose
            powers = np.full(len(body) + 1, multiplier, np.uint64)
            powers[0] = 1
            powers = np.cumprod(powers, dtype=np.uint64)
            inverses = np.full(len(body) + 1, inverse, np.uint64)
            inverses[0] = 1
            inverses = np.cumprod(inverses, dtype=np.uint64)
            prefix = np.zeros(len(body) + 1, np.uint64)
            np.cumsum(body * powers[:-1], dtype=np.uint64, out=prefix[1:])
            raw = (prefix[ends] - prefix[starts]) * inverses[starts]
            first = _mix(raw ^ ((ends - starts).astype(np.uint64) * np.uint64(_LENGTH)))
            step = _mix(first ^ np.uint64(_STEP)) | np.uint64(1)
        yield first, step


_LENGTH, _STEP = 0x9E3779B97F4A7C15, 0xD6E8FEB86659FD93


def _mix(value: Any) -> Any:
    """splitmix64's finalizer (numpy arrays of uint64, or a Python int), modulo 2^64."""
    if isinstance(value, int):
        value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
        return value ^ (value >> 31)
    value = (value ^ (value >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    value = (value ^ (value >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


def _word_hashes(word: bytes) -> tuple[int, int]:
    """(first probe, step) of one word, as :func:`_hashes_of` computes them."""
    raw, power = 0, 1
    for byte in word:
        raw = (raw + byte * power) & _MASK
        power = (power * _MULTIPLIER) & _MASK
    first = _mix(raw ^ ((len(word) * _LENGTH) & _MASK))
    return first, _mix(first ^ _STEP) | 1


def _in_filter(summary: bytes, hashes: np.ndarray) -> np.ndarray:
    """Per (first probe, step) row of ``hashes``: whether the filter may hold its word."""
    bits, probes = struct.unpack_from("<IB", summary, 1)
    present = np.frombuffer(summary, np.uint8, offset=6)
    held = np.ones(len(hashes), np.bool_)
    with np.errstate(over="ignore"):
        for probe in range(probes):
            at = (hashes[:, 0] + np.uint64(probe) * hashes[:, 1]) & np.uint64(bits - 1)
            held &= (
                present[(at >> np.uint64(3)).astype(np.int64)]
                >> (at & np.uint64(7)).astype(np.uint8)
            ) & 1 == 1
    return held


def word_test(ids: Forgotten) -> Callable[[bytes], bool] | None:
    """Whether a file whose summary (:func:`words_of`) is given may lose records to an
    erasure of ``ids``: False proves it cannot. None when no summary can prove it (a
    spelling of an id without a word character)."""
    import ahocorasick_rs

    tests: dict[bytes, int] = {}  # each look-up in a file's words → its number
    groups: list[list[int]] = []  # per spelling: the look-ups that must all succeed
    exact: dict[bytes, int] = {}  # each word a filter must hold → its number
    wholes: list[list[int]] = []  # per spelling: the words that must all be held
    for spelling in needles_of(ids):
        numbers = [tests.setdefault(test, len(tests)) for test in _run_tests(spelling)]
        if not numbers:
            return None
        groups.append(numbers)
        runs = [run.group() for run in _WORD_RUN_BYTES.finditer(spelling)]
        wholes.append([exact.setdefault(run, len(exact)) for run in runs])
    if not groups:
        return None
    looked = list(tests)
    alone = sorted({looked[group[0]] for group in groups if len(group) == 1})
    together = [group for group in groups if len(group) > 1]
    # A few look-ups are bytes.find's (memchr-fast); more, one pass for all of them (an
    # automaton of several patterns has no such shortcut: ≈ 3 ns a byte).
    either = ahocorasick_rs.BytesAhoCorasick(alone) if len(alone) > _FEW else None
    # Each look-up of a spelling of several words, found even where another overlaps it.
    parts = ahocorasick_rs.BytesAhoCorasick(looked) if together else None
    hashes = np.array([_word_hashes(word) for word in exact], np.uint64).reshape(-1, 2)
    single = np.array(sorted({whole[0] for whole in wholes if len(whole) == 1}), np.int64)
    several = [np.array(whole, np.int64) for whole in wholes if len(whole) > 1]

    def may_pass(summary: bytes) -> bool:
        if summary[:1] == _FILTER:  # every word of a spelling, whole
            held = _in_filter(summary, hashes)
            return bool(held[single].any()) or any(held[whole].all() for whole in several)
        # (the kind's byte, "W", before the first "\n": at worst a file read for nothing)
        if either is None:
            if any(test in summary for test in alone):
                return True
        elif either.find_matches_as_indexes(summary):
            return True
        if parts is None:
            return False
        found = {k for k, _, _ in parts.find_matches_as_indexes(summary, overlapping=True)}
        return any(found.issuperset(group) for group in together)

    return may_pass


def _run_tests(spelling: bytes) -> list[bytes]:
    """What the words of a file holding ``spelling`` must hold: each run of word characters
    of it as a whole word where the spelling bounds it on both sides (``\\nrun\\n``), the end
    of a word where it starts the spelling (``run\\n``), the start of one where it ends it
    (``\\nrun``), and as part of a word where it is the whole spelling."""
    tests = []
    for run in _WORD_RUN_BYTES.finditer(spelling):
        before = b"\n" if run.start() > 0 else b""
        after = b"\n" if run.end() < len(spelling) else b""
        tests.append(before + run.group() + after)
    return tests
