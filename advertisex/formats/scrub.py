"""Remove every record that mentions some ids from a file's bytes, in its own format.

This is how a user's erasure reaches the landing zone: a segment is framed with the
same decoders the processor uses (JSON objects, CSV rows), the records naming a
forgotten id are dropped, and the rest is written back in the same container — NDJSON,
CSV with its header, Avro with its writer schema and codec, gzip again if it was gzip.

Which records *name* an id is one rule, for landing files and the tables' texts alike
(:func:`mentioned`):

* a record read as one (a JSON object, a CSV row under its header, an Avro record) is
  the user's when its ``user_id`` holds the id (as a string or a number, as the processor
  reads it), and names them when a field the contracts do not know (what the tables keep
  in ``extras``) holds it as a whole word of a string, at any depth. The fields the
  contracts type — times, amounts, enumerations, other entities' ids, addresses — are
  never searched: erasing ``42`` or ``mobile`` must not take every record whose time has
  minute 42 or whose device is a phone;
* text that is not a record (a broken line, a CSV row without its header, bytes kept
  undecoded) mentions the id when it holds it as a whole word: bounded by quotes,
  delimiters or the ends of the text, not inside a longer word — so erasing ``u1``
  leaves ``u12`` alone (:func:`mention_pattern`).
"""

from __future__ import annotations

import base64
import functools
import gzip
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.formats.bounded import gunzip_if_needed
from advertisex.formats.csvfmt import EXTRAS, frame_csv
from advertisex.formats.framing import BOM, FRAME_ERROR, POSITION, RAW, UNDECODED
from advertisex.formats.inflate import (
    DEFLATE_WBITS,
    GZIP_MAGIC,
    GZIP_WBITS,
    inflate_limit,
    inflated_until_damage,
)
from advertisex.formats.jsonfmt import frame_json
from advertisex.model.contracts import BID_FIELDS, CLICK_ALIASES, CLICK_FIELDS, IMPRESSION_FIELDS
from advertisex.util import jsonutil

# Characters that continue a word around an id (so "u1" is not found inside "u12").
_WORD = r"A-Za-z0-9_.@\-"


def spellings(user: str) -> list[str]:
    """How the id ``user`` may be written in a record's text: as it is, as a JSON string
    escapes it (a quote, a backslash, a control character; and every non-ASCII character
    as a ``\\u`` escape, in lower or upper case hex, as many JSON writers do), and as CSV
    quotes it (a quote doubled). A text that spells the id any of these ways names it:
    ``jos\\u00e9`` in a JSON line is the user ``josé``.
    """
    escaped = jsonutil.dumps_str(user)[1:-1]
    forms = {user, escaped, user.replace('"', '""')}
    if not escaped.isascii():
        for case in (str.lower, str.upper):
            forms.add("".join(c if c.isascii() else _escape_u(c, case) for c in escaped))
    return sorted(forms)


def _escape_u(char: str, case: Callable[[str], str]) -> str:
    units = char.encode("utf-16-be")  # past U+FFFF: a surrogate pair, as JSON writes it
    return "".join("\\u" + case(units[at : at + 2].hex()) for at in range(0, len(units), 2))


def needles_of(ids: Iterable[str]) -> list[bytes]:
    """The bytes a file that names one of ``ids`` holds (every :func:`spelling <spellings>`)."""
    return sorted({form.encode() for user in ids for form in spellings(user)})


def mention_pattern(ids: Iterable[str]) -> str:
    """A regular expression (RE2 and Python alike) matching text that mentions an id.

    >>> import re
    >>> p = mention_pattern(["u1"])
    >>> [bool(re.search(p, t)) for t in ('{"user_id":"u1"}', "x,u1,y", "u12", "au1")]
    [True, True, False, False]
    """
    forms = {form for user in ids for form in spellings(user)}
    alternatives = "|".join(re.escape(i) for i in sorted(forms, key=len, reverse=True))
    return f"(?:^|[^{_WORD}])(?:{alternatives})(?:$|[^{_WORD}])"


_WORD_RUN = re.compile(f"[{_WORD}]+")
_WORD_RUN_BYTES = re.compile(f"[{_WORD}]+".encode())


class Forgotten:
    """The ids an erasure looks for, and how to find them, worked out once for it: an
    erasure of a thousand ids (or a million: a month of requests) looks at every landing
    file and table text, and a search per id made a 1,000-id erasure of a 2 M-event lake
    run for minutes.

    * Whether bytes may name an id: one Aho-Corasick pass over them for every spelling of
      every id (:func:`needles_of`), at memory speed however many ids there are.
    * Whether a text holds an id as a whole word: an id made of word characters only (most
      are) is exactly one of the text's maximal runs of word characters — one set look-up
      a run; the others (spaces, quotes, non-ASCII) by their own regular expression, once
      one of their spellings is found in the text (the same kind of pass): compiling one
      for each of 200,000 such ids took most of an erasure's time."""

    def __init__(self, ids: Iterable[str]) -> None:
        import ahocorasick_rs

        self.ids = sorted(set(ids))
        self.wanted = frozenset(self.ids)
        self.array = pa.array(self.ids, pa.string())
        self.plain = frozenset(i for i in self.ids if _WORD_RUN.fullmatch(i))
        self.plain_array = pa.array(sorted(self.plain), pa.string())
        odd = [(form, i) for i in self.ids if i not in self.plain for form in spellings(i)]
        self._odd_ids = [i for _, i in odd]  # the id each spelling below spells
        self._odd = ahocorasick_rs.AhoCorasick([form for form, _ in odd]) if odd else None
        self._odd_bytes = (
            ahocorasick_rs.BytesAhoCorasick([form.encode() for form, _ in odd]) if odd else None
        )
        needles = needles_of(self.ids)
        self._spelled = ahocorasick_rs.BytesAhoCorasick(needles) if needles else None
        # An Avro string is its UTF-8 bytes, unescaped; a record's repr holds it as it is.
        exact = [i.encode() for i in self.ids]
        self._exact = ahocorasick_rs.BytesAhoCorasick(exact) if exact else None
        self._as_is = ahocorasick_rs.AhoCorasick(self.ids) if self.ids else None
        # Whether a Python repr holds every id as it is (it escapes quotes, backslashes and
        # what is not printable).
        self.as_is_in_repr = all(i.isprintable() and not set(i) & set("\\'\"") for i in self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def may_be_in(self, data: bytes | memoryview) -> bool:
        """Whether ``data`` holds some spelling of an id (the cheap test before parsing)."""
        return self._spelled is not None and bool(self._spelled.find_matches_as_indexes(data))

    def spelled_at(self, data: bytes) -> list[tuple[int, int]]:
        """(start, end) of every spelling of an id in ``data``, overlapping ones too."""
        if self._spelled is None:
            return []
        found = self._spelled.find_matches_as_indexes(data, overlapping=True)
        return [(start, end) for _, start, end in found]

    def exactly_at(self, data: Any) -> list[tuple[int, int]]:
        """(start, end) of every id's UTF-8 bytes as they are in ``data`` (bytes-like),
        overlapping ones too."""
        if self._exact is None:
            return []
        found = self._exact.find_matches_as_indexes(data, overlapping=True)
        return [(start, end) for _, start, end in found]

    def exact_starts(self, data: Any) -> list[int]:
        """Where an id's UTF-8 bytes begin in ``data`` (:meth:`exactly_at`)."""
        return [start for start, _ in self.exactly_at(data)]

    def odd_starts(self, data: Any) -> list[int]:
        """Where a spelling of an id that is not plain (:attr:`has_odd`) begins in ``data``."""
        if self._odd_bytes is None:
            return []
        found = self._odd_bytes.find_matches_as_indexes(data, overlapping=True)
        return [start for _, start, _ in found]

    def as_is_in(self, text: str) -> bool:
        """Whether ``text`` holds an id as it is (as a substring)."""
        return self._as_is is not None and bool(self._as_is.find_matches_as_indexes(text))

    def words(self, text: str) -> list[str]:
        """The ids ``text`` holds as whole words (:func:`mention_pattern`), sorted."""
        found = set(self.plain.intersection(_WORD_RUN.findall(text))) if self.plain else set()
        if self._odd is not None:
            spelled = self._odd.find_matches_as_indexes(text, overlapping=True)
            odd = {self._odd_ids[k] for k, _, _ in spelled}
            found.update(i for i in odd if _pattern(i).search(text))
        return sorted(found)

    def words_in_bytes(self, data: bytes) -> list[str]:
        """:meth:`words` of bytes (a plain id is ASCII: its runs are the bytes' runs)."""
        found: set[str] = set()
        if self.plain:
            runs = {run.decode("ascii") for run in _WORD_RUN_BYTES.findall(data)}
            found.update(self.plain.intersection(runs))
        if self._odd_bytes is not None:
            spelled = self._odd_bytes.find_matches_as_indexes(data, overlapping=True)
            odd = {self._odd_ids[k] for k, _, _ in spelled}
            found.update(i for i in odd if _pattern_bytes(i).search(data))
        return sorted(found)

    @property
    def has_odd(self) -> bool:
        """Whether some id is not plain (has a character other than a word's)."""
        return self._odd is not None


@functools.lru_cache(maxsize=4096)
def _pattern(user: str) -> re.Pattern[str]:
    return re.compile(mention_pattern([user]))


@functools.lru_cache(maxsize=4096)
def _pattern_bytes(user: str) -> re.Pattern[bytes]:
    return re.compile(mention_pattern([user]).encode())


def forgotten(ids: Forgotten | Iterable[str]) -> Forgotten:
    """``ids`` as a :class:`Forgotten` (an erasure builds one and hands it around)."""
    return ids if isinstance(ids, Forgotten) else Forgotten(ids)


def mentioned(text: str, ids: Forgotten | Iterable[str]) -> list[str]:
    """The ids ``text`` names: by the record rule when it is a JSON object, else as whole
    words of it (of the bytes it stands for, when it is :data:`UNDECODED`)."""
    ids = forgotten(ids)
    if text.startswith(UNDECODED):
        try:
            data = base64.b64decode(text[len(UNDECODED) :], validate=True)
        except ValueError:  # not bytes kept undecoded: a producer's text that begins so
            return ids.words(text)
        return named_in_bytes(data, ids)
    pairs = _json_object(text)
    if pairs is not None:
        return sorted(named_in_fields(pairs, ids))
    return ids.words(text)


# The field that names a record's user, in every source; and the fields the contracts type
# (their values are times, amounts, enumerations, other entities' ids, addresses): a value
# of theirs that equals an id is not that user ("42" a minute or a price, "mobile" a device).
USER_FIELD = "user_id"
_TYPED = frozenset({*IMPRESSION_FIELDS, *CLICK_FIELDS, *CLICK_ALIASES, *BID_FIELDS}) - {USER_FIELD}


def _json_object(text: str) -> jsonutil.Pairs | None:
    """``text`` read as written when it is one JSON object (whitespace around it allowed):
    a user field may hold an id as a number (the processor reads ``"user_id": 42`` as the
    user ``42``, while a number anywhere else names no one), and a key may be written twice."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = jsonutil.loads_as_written(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, jsonutil.Pairs) else None


def named_in_fields(fields: Iterable[tuple[str, Any]], ids: Forgotten | Iterable[str]) -> set[str]:
    """The ids a record of ``fields`` names: its user field's value, whole; whole words of
    strings in the fields the contracts do not know, at any depth. ``fields``: (name,
    value) pairs, values decoded (nested objects as ``jsonutil.Pairs`` or dicts)."""
    ids = forgotten(ids)
    named: set[str] = set()
    free: list[str] = []
    for key, value in fields:
        name = key.strip().lower() if isinstance(key, str) else key
        if name == USER_FIELD and isinstance(value, str):
            if value.strip() in ids.wanted:
                named.add(value.strip())
        elif name == USER_FIELD or name not in _TYPED:  # an object as user: its strings
            free.extend(_strings(value))
    for text in free:
        named.update(ids.words(text))
    return named


def _strings(value: Any) -> Iterator[str]:
    """Every string inside ``value`` (not numbers), nested objects, maps and lists too."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, jsonutil.Number):
            continue
        if isinstance(item, str):
            yield item
        elif isinstance(item, jsonutil.Pairs):
            stack.extend(v for _, v in item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def named_in_bytes(data: bytes, ids: Forgotten | Iterable[str]) -> list[str]:
    """The ids bytes that could not be decoded name (:func:`searchable_parts`)."""
    ids = forgotten(ids)
    return sorted({i for part in searchable_parts(data) for i in ids.words_in_bytes(part)})


def mentions(column: pa.ChunkedArray | pa.Array, ids: Forgotten | Iterable[str]) -> pa.ChunkedArray:
    """Per row of a text column: whether it names any of ``ids`` (:func:`mentioned`; null
    text: no)."""
    mask = np.zeros(len(column), dtype=bool)
    mask[np.fromiter(_named_rows(column, forgotten(ids)), dtype=np.int64)] = True
    return pa.chunked_array([pa.array(mask)])


def _named_rows(column: pa.ChunkedArray | pa.Array, ids: Forgotten) -> dict[int, list[str]]:
    """The rows of a text column that name some of ``ids``, with those ids. Only the texts
    that may (:func:`_candidates`) are read one by one."""
    rows = np.flatnonzero(_candidates(column, ids))
    if not len(rows):
        return {}
    texts = column.take(pa.array(rows)).to_pylist()
    found = ((int(r), mentioned(text, ids)) for r, text in zip(rows, texts, strict=True))
    return {row: named for row, named in found if named}


def _candidates(column: pa.ChunkedArray | pa.Array, ids: Forgotten) -> np.ndarray:
    """Per row: whether its text may name an id — it holds one as a whole word (plain ids),
    a spelling of another, or stands for undecoded bytes (:data:`UNDECODED`, looked into:
    :func:`searchable_parts`). The column's bytes are searched at once for the ids (an id
    named as a whole word is among them as it is): only the few texts that hold one are
    split into words — splitting every text of a table (its ``extras``) was most of a
    one-user erasure's look at the tables."""
    text = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        text = text.cast(pa.string())
    candidates = pc.fill_null(pc.starts_with(text, UNDECODED), False).to_numpy(zero_copy_only=False)
    valid = pc.is_valid(text).to_numpy(zero_copy_only=False)
    if ids.has_odd:  # a spelling of an id that is not plain: read whole after
        candidates[_rows_with(text, ids.odd_starts) & valid] = True
    if ids.plain:
        holding = np.flatnonzero(_rows_with(text, ids.exact_starts) & valid)
        if len(holding):
            named = _runs_in(text.take(pa.array(holding)), ids.plain_array)
            candidates[holding[named]] = True
    return candidates


def _rows_with(text: pa.Array, starts: Callable[[Any], list[int]]) -> np.ndarray:
    """Per row of a string array: whether ``starts`` (where needles begin in bytes) finds
    one beginning in its text — over the array's data buffer, in one pass."""
    rows = np.zeros(len(text), dtype=bool)
    buffers = text.buffers()
    if not len(text) or buffers[2] is None or buffers[2].size == 0:
        return rows
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=width)[text.offset : text.offset + len(text) + 1]
    lo, hi = int(offsets[0]), int(offsets[-1])
    found = np.asarray(starts(memoryview(buffers[2]).cast("B")[lo:hi]), dtype=np.int64) + lo
    if len(found):
        at = np.searchsorted(offsets, found, "right") - 1
        rows[at[(at >= 0) & (at < len(text))]] = True
    return rows


def _runs_in(text: pa.Array, plain: pa.Array) -> np.ndarray:
    """Per row: whether one of the maximal runs of word characters of its text is one of
    ``plain`` (the whole-word test of :meth:`Forgotten.words`, over a column at once)."""
    runs = pc.split_pattern_regex(pc.fill_null(text, ""), f"[^{_WORD}]+")
    hit = np.zeros(len(text), dtype=bool)
    named = pc.is_in(pc.list_flatten(runs), value_set=plain).to_numpy(zero_copy_only=False)
    hit[pc.list_parent_indices(runs).to_numpy()[named]] = True
    return hit


def searchable_parts(data: bytes) -> list[bytes]:
    """Where bytes that could not be decoded (an ``avro_unreadable`` or ``gzip_damaged``
    record's, a damaged gzip file's rest) may name an id: the bytes themselves (an Avro
    string is its UTF-8 bytes), a gzip stream's output as far as it inflates (a damaged
    member's up to where zlib stops), and the blocks of an Avro container, or of its tail,
    inflated as far as they do (deflate). What is inflated is bounded as decoding bounds it."""
    limit = inflate_limit(len(data))
    parts = [data]
    if data.startswith(GZIP_MAGIC):
        parts.append(inflated_until_damage(data, GZIP_WBITS, limit))
    parts.extend(_avro_blocks_inflated(data, limit))
    return [part for part in parts if part]


def _avro_blocks_inflated(data: bytes, limit: int) -> list[bytes]:
    """Each block of the Avro container ``data`` (from its first block, or from its start
    when it is a container's tail) inflated as far as it does as a deflate block; none when
    its blocks do not read as blocks, or are not deflated."""
    from advertisex.formats.avrofmt import MAGIC, AvroInvalid, _header, _varint

    at = 0
    if data.startswith(MAGIC):
        header = _header(data)
        if header is None:
            return []
        at = header[2]
    parts: list[bytes] = []
    total = 0
    while at < len(data) and total < limit:
        try:
            count, at = _varint(data, at)
            size, at = _varint(data, at)
        except AvroInvalid:
            break
        if count < 0 or size <= 0:
            break
        inflated = inflated_until_damage(data[at : at + size], DEFLATE_WBITS, limit - total)
        parts.append(inflated)
        total += len(inflated)
        at += size + 16  # the block's bytes, then its sync marker
    return parts


@dataclass
class Scrubbed:
    """A file's bytes without the records that mention the ids. ``by_columns``: its records
    were told by their columns (a CSV file framed under its header), and ``positions`` are
    those of the ones removed — what a quarantined row of it, its text without the header,
    is judged by (``lake.erasure``). ``searched``: where none was removed, the bytes the
    cheap test searched, as ``scrubwords.words_of`` reads them — what its gzip stream
    inflated to (or its bytes, not gzip'd), its Avro blocks inflated — so that its words
    are found without inflating them again; None where it read them otherwise (a damaged
    gzip stream)."""

    data: bytes
    removed: int = 0
    by_id: Counter[str] = field(default_factory=Counter)
    by_columns: bool = False
    positions: set[int] = field(default_factory=set)
    searched: list[bytes] | None = None


def scrub(data: bytes, container: str, ids: Forgotten | Iterable[str]) -> Scrubbed:
    """``data`` (a ``json``, ``csv`` or ``avro`` container, gzip'd or not) without the
    records that mention any of ``ids``; the same bytes back when none does."""
    ids = forgotten(ids)
    packed = data.startswith(GZIP_MAGIC)
    plain, damage = gunzip_if_needed(data, inflate_limit(len(data))) if packed else (data, None)
    # A damaged gzip's rest (its gzip_damaged record's bytes), kept as it is unless it
    # names one of them: then it goes whole, nothing in it being readable record by record.
    rest = data[damage.at :] if damage is not None else b""
    named = named_in_bytes(rest, ids) if rest else []
    searched = None if damage is not None else [plain]  # (scrubwords.words_of: not data)
    if container != "avro" and not named and not ids.may_be_in(plain):
        return Scrubbed(data, searched=searched)  # the cheap test first: most never name them
    try:
        result = _scrub_container(plain, container, ids)
    except Exception:
        if damage is None:
            raise  # the caller reads it line by line
        result = scrub_lines(plain, ids)  # a damaged gzip's readable part, cut anywhere
    if named:
        result.removed += 1
        result.by_id.update(named)
        rest = b""
    if not result.removed:
        if searched is not None and container == "avro":
            searched = result.searched  # its blocks inflated: all its search looked into
        return Scrubbed(data, by_columns=result.by_columns, searched=searched)
    result.searched = None  # (other bytes now: its words are those of the bytes written)
    if packed:
        result.data = gzip.compress(result.data, mtime=0) + rest
    return result


def _scrub_container(data: bytes, container: str, ids: Forgotten) -> Scrubbed:
    if container == "avro":
        return _scrub_avro(data, ids)
    return _scrub_text(data, ids, header=container == "csv")


def scrub_lines(data: bytes, ids: Forgotten | Iterable[str]) -> Scrubbed:
    """Any bytes, line by line: the lines mentioning an id dropped (files that could not
    be framed at all, such as segments moved aside as unreadable)."""
    ids = forgotten(ids)
    kept, result = [], Scrubbed(b"")
    for line in data.splitlines(keepends=True):
        worded = ids.words_in_bytes(line) if ids.may_be_in(line) else []
        named = mentioned(line.decode("utf-8", "replace"), ids) if worded else []
        if named:
            result.removed += 1
            result.by_id.update(named)
        else:
            kept.append(line)
    result.data = b"".join(kept) if result.removed else data
    return result


def by_lines(data: bytes, container: str) -> bool:
    """Whether :func:`scrub` reads ``data`` (a file's bytes, un-gzip'd) of ``container``
    line by line — JSON lines, not an array nor CSV nor Avro: a line loses its records
    only when it holds a spelling of an id as whole words (:meth:`Forgotten.words_in_bytes`),
    never when it only holds one inside a longer word."""
    return container not in ("avro", "csv") and data.lstrip(BOM).lstrip()[:1] != b"["


def _scrub_text(data: bytes, ids: Forgotten, *, header: bool) -> Scrubbed:
    if header or not by_lines(data, "json"):  # CSV, or a JSON array: whole
        return _scrub_framed(data, ids, header=header)
    # JSON lines: only the lines holding an id are looked at (one may hold several
    # objects back to back); every other byte is kept as it is, cheaply.
    kept, result, last = [], Scrubbed(data), 0
    for start, end in _lines_holding(data, ids):
        line = data[start:end]
        if not ids.words_in_bytes(line):
            continue
        pairs = _json_object(line.decode("utf-8", "replace"))
        if pairs is not None:  # the usual line: one record
            named = named_in_fields(pairs, ids)
            if not named:
                continue  # it holds the id, but not as the user's or in a free field
            kept.append(data[last:start])
            last = end
            result.removed += 1
            result.by_id.update(named)
            continue
        part = _scrub_framed(line, ids, header=False)  # objects back to back, or junk
        if not part.removed:
            continue
        kept.append(data[last:start])
        last = end
        result.removed += part.removed
        result.by_id.update(part.by_id)
        kept.append(part.data)
    if result.removed:
        kept.append(data[last:])
        result.data = b"".join(kept)
    return result


def _lines_holding(data: bytes, ids: Forgotten) -> list[tuple[int, int]]:
    """(start, end) of every line of ``data`` that holds a spelling of an id, in order, each
    once (found by one pass of :meth:`Forgotten.spelled_at` over the whole file at memory
    speed, not line by line)."""
    spans: set[tuple[int, int]] = set()
    for at, stop in ids.spelled_at(data):
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", stop)
        spans.add((start, len(data) if end < 0 else end + 1))
    return sorted(spans)


def _scrub_framed(data: bytes, ids: Forgotten, *, header: bool) -> Scrubbed:
    """Frame ``data`` as the processor does and keep the records that name no id."""
    frame = frame_csv(data) if header else frame_json(data)
    raw = frame.column(RAW)
    named = _csv_rows_naming(frame, ids) if header else _named_rows(raw, ids)
    mask = np.zeros(frame.num_rows, dtype=bool)
    mask[np.fromiter(named, dtype=np.int64)] = True
    hit = pa.array(mask)
    removed = len(named)
    result = Scrubbed(data, removed, by_columns=header)
    if header:
        result.positions = set(frame.column(POSITION).filter(hit).to_pylist())
    if not removed:
        return result
    for names in named.values():
        result.by_id.update(names)
    kept = [r.rstrip("\n").rstrip("\r") for r in raw.filter(pc.invert(hit)).to_pylist()]
    lines = ([_header_line(data)] if header else []) + kept
    result.data = (BOM if data.startswith(BOM) else b"") + "".join(
        line + "\n" for line in lines
    ).encode()
    return result


def _csv_rows_naming(frame: pa.Table, ids: Forgotten) -> dict[int, list[str]]:
    """The CSV rows framed under their header that name some of ``ids``, with those ids:
    a row's ``user_id`` whole, whole words of its unknown columns (``extras``); a row the
    header does not fit (its columns cannot be told) as whole words of its text."""
    named: dict[int, list[str]] = {}
    rows = np.flatnonzero(_candidates(frame.column(RAW), ids))
    if not len(rows):
        return named
    picked = frame.take(pa.array(rows)).select([RAW, FRAME_ERROR, USER_FIELD, EXTRAS])
    for row, (raw, error, user, extras) in zip(
        rows, zip(*(c.to_pylist() for c in picked.columns), strict=True), strict=True
    ):
        if error is not None:
            names = ids.words(raw)
        else:
            fields = [(USER_FIELD, user)] + (list(jsonutil.loads(extras).items()) if extras else [])
            names = sorted(named_in_fields(fields, ids))
        if names:
            named[int(row)] = names
    return named


def _header_line(data: bytes) -> str:
    text = data.removeprefix(BOM).decode("utf-8", "replace")
    return next((line.rstrip("\r") for line in text.split("\n") if line.strip()), "")


def _scrub_avro(data: bytes, ids: Forgotten) -> Scrubbed:
    """Blocks whose (inflated) bytes hold no id are kept as they are. In the others only
    the records whose own bytes hold an id are decoded and judged (an Avro string is its
    UTF-8 bytes: a record naming an id holds them), and the records kept are copied as the
    bytes they were: a landing file of bids is one block of ≈ 150,000 records, decoded and
    encoded again record by record in ≈ 3.6 s for one user's bid (0.26 s so). Where each
    record starts the compiled reader tells (``avro.c``), else fastavro by reading them.
    The header and the blocks left whole are the same bytes after. Blocks are inflated
    within the bounds decoding keeps, by the codecs processing accepts: a file past them,
    cut short or damaged raises ``AvroInvalid`` (the caller then searches it as bytes)."""
    from advertisex.formats.avrofmt import COMPRESS, AvroInvalid, long_bytes

    first, codec, schema, layout, blocks = _avro_blocks(data)
    found = [ids.exactly_at(raw) for _, _, raw in blocks]
    result = Scrubbed(data, searched=[raw for _, _, raw in blocks])
    if not any(found):
        return result
    may_name = _screen(ids)
    out = [data[:first]]  # the header and its sync marker, as they were
    for (span, count, raw), at in zip(blocks, found, strict=True):
        if not at:
            out.append(data[span[0] : span[1]])
            continue
        starts = _record_starts(raw, count, layout, schema)
        if starts is None:
            raise AvroInvalid(f"byte {span[0]}: the block is not {count} records of its schema")
        gone = _named_records(raw, starts, at, schema, ids, may_name, result)
        if not gone:
            out.append(data[span[0] : span[1]])
        elif len(gone) < count:
            body = COMPRESS[codec](_without_spans(raw, starts, gone))
            sync = data[span[1] - 16 : span[1]]
            out.extend((long_bytes(count - len(gone)), long_bytes(len(body)), body, sync))
    if result.removed:
        result.data = b"".join(out)
    return result


def _avro_blocks(
    data: bytes,
) -> tuple[int, str, Any, list[Any] | None, list[tuple[tuple[int, int], int, bytes]]]:
    """An Avro container as :func:`_scrub_avro` copies it: where its first block begins,
    its codec, its parsed schema (times read as numbers, as processing frames them),
    ``avro.c``'s layout of its records (None: not one it reads) and each block's (byte
    span, record count, inflated bytes)."""
    import fastavro

    from advertisex.formats.avrofmt import (
        _INFLATE,
        MAGIC,
        AvroInvalid,
        _blocks,
        _header,
        _native_fields,
        _times_as_numbers,
    )

    header = _header(data) if data.startswith(MAGIC) else None
    if header is None:
        raise AvroInvalid("byte 0: not an Avro object container with a readable header")
    _, codec, first = header
    if codec not in _INFLATE:
        raise AvroInvalid(f"codec {codec!r} is not one processing accepts")
    try:
        writer_schema = fastavro.block_reader(io.BytesIO(data)).writer_schema  # the header
        schema = fastavro.parse_schema(_times_as_numbers(writer_schema)[0])
    except Exception as error:  # fastavro's many ways of refusing a schema
        raise AvroInvalid(f"byte 0: unreadable Avro header ({error})") from None
    fields = _native_fields(writer_schema)
    read = list(_blocks(data, first, data[first - 16 : first]))
    ends = [start for start, _, _ in read[1:]] + [len(data)]
    budget = inflate_limit(len(data))
    blocks = []
    for (start, count, body), end in zip(read, ends, strict=True):
        raw = _INFLATE[codec](body, budget, start)
        budget -= len(raw)
        if count > len(raw):  # a record takes a byte at least: a hostile count, not records
            raise AvroInvalid(f"byte {start}: {count} records declared in {len(raw)} bytes")
        blocks.append(((start, end), count, raw))
    layout = None if fields is None else [field for _, field in fields]
    return first, codec, schema, layout, blocks


def _record_starts(
    raw: bytes, count: int, layout: list[Any] | None, schema: Any
) -> np.ndarray | None:
    """Where each of the ``count`` records of an inflated block starts (``count`` + 1
    offsets, the last its length): by the compiled reader, else by fastavro reading them;
    None where the block is not exactly its records."""
    import fastavro

    from advertisex import native

    if layout is not None and (starts := native.avro_record_starts(raw, count, layout)) is not None:
        return starts
    body = io.BytesIO(raw)
    starts = np.empty(count + 1, dtype=np.int64)
    try:
        for r in range(count):
            starts[r] = body.tell()
            fastavro.schemaless_reader(body, schema, None)
    except Exception:  # a record that does not decode
        return None
    starts[count] = body.tell()
    return starts if starts[count] == len(raw) else None


def _named_records(
    raw: bytes,
    starts: np.ndarray,
    at: list[tuple[int, int]],
    schema: Any,
    ids: Forgotten,
    may_name: Callable[[Any], bool],
    result: Scrubbed,
) -> list[int]:
    """The records of an inflated block (starting at ``starts``) that name an id, judged
    among those that an id's bytes (``at``) overlap; ``result`` counts them."""
    import fastavro

    first = np.searchsorted(starts, [s for s, _ in at], "right") - 1
    last = np.searchsorted(starts, [e - 1 for _, e in at], "right") - 1
    suspects = sorted({int(r) for a, b in zip(first, last, strict=True) for r in range(a, b + 1)})
    gone = []
    for r in suspects:
        record: Any = fastavro.schemaless_reader(
            io.BytesIO(raw[starts[r] : starts[r + 1]]), schema, None
        )
        named = named_in_fields(record.items(), ids) if may_name(record) else set()
        if named:
            gone.append(r)
            result.removed += 1
            result.by_id.update(named)
    return gone


def _without_spans(raw: bytes, starts: np.ndarray, gone: list[int]) -> bytes:
    """The block's bytes without those of the records ``gone`` (ascending)."""
    parts, at = [], 0
    for r in gone:
        parts.append(raw[at : starts[r]])
        at = int(starts[r + 1])
    parts.append(raw[at:])
    return b"".join(parts)


def _screen(ids: Forgotten) -> Callable[[Any], bool]:
    """A cheap first look at a decoded record: False when it cannot name any of ``ids``.

    A block that holds an id is decoded whole, and walking each of its thousands of
    records in Python costs ten times the decoding; the record's ``repr`` (built in C)
    holds every string value as it is, unless the id is one ``repr`` escapes."""
    if not ids.as_is_in_repr:
        return lambda record: True

    def may_name(record: Any) -> bool:
        return ids.as_is_in(repr(record))

    return may_name
