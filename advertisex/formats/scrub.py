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
from advertisex.formats.framing import BOM, FRAME_ERROR, RAW, UNDECODED
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


def mentioned(text: str, ids: Iterable[str]) -> list[str]:
    """The ids ``text`` names: by the record rule when it is a JSON object, else as whole
    words of it (of the bytes it stands for, when it is :data:`UNDECODED`)."""
    if text.startswith(UNDECODED):
        return named_in_bytes(base64.b64decode(text[len(UNDECODED) :]), ids)
    pairs = _json_object(text)
    if pairs is not None:
        return sorted(named_in_fields(pairs, ids))
    return _words_naming(text, ids)


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


def named_in_fields(fields: Iterable[tuple[str, Any]], ids: Iterable[str]) -> set[str]:
    """The ids a record of ``fields`` names: its user field's value, whole; whole words of
    strings in the fields the contracts do not know, at any depth. ``fields``: (name,
    value) pairs, values decoded (nested objects as ``jsonutil.Pairs`` or dicts)."""
    wanted = ids if isinstance(ids, set | frozenset) else set(ids)
    named: set[str] = set()
    free: list[str] = []
    for key, value in fields:
        name = key.strip().lower() if isinstance(key, str) else key
        if name == USER_FIELD and isinstance(value, str):
            if value.strip() in wanted:
                named.add(value.strip())
        elif name == USER_FIELD or name not in _TYPED:  # an object as user: its strings
            free.extend(_strings(value))
    for text in free:
        named.update(_words_naming(text, wanted))
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


def _words_naming(text: str, ids: Iterable[str]) -> list[str]:
    """The ids ``text`` holds as whole words (:func:`mention_pattern`)."""
    return [i for i in ids if re.search(mention_pattern([i]), text)]


def named_in_bytes(data: bytes, ids: Iterable[str]) -> list[str]:
    """The ids bytes that could not be decoded name (:func:`searchable_parts`)."""
    parts = searchable_parts(data)
    return [i for i in ids if any(re.search(mention_pattern([i]).encode(), p) for p in parts)]


def mentions(column: pa.ChunkedArray | pa.Array, ids: Iterable[str]) -> pa.ChunkedArray:
    """Per row of a text column: whether it names any of ``ids`` (:func:`mentioned`; null
    text: no). Only the texts that hold an id as a whole word (found by the engine's
    regular expression, over the whole column at once) or stand for undecoded bytes
    (:data:`UNDECODED`, looked into: :func:`searchable_parts`) are read one by one."""
    ids = list(ids)
    words = pc.fill_null(pc.match_substring_regex(column, mention_pattern(ids)), False)
    undecoded = pc.fill_null(pc.starts_with(column, UNDECODED), False)
    rows = np.flatnonzero(pc.or_(words, undecoded).to_numpy(zero_copy_only=False))
    mask = np.zeros(len(column), dtype=bool)
    if len(rows):
        texts = column.take(pa.array(rows)).to_pylist()
        named = [r for r, text in zip(rows, texts, strict=True) if mentioned(text, ids)]
        mask[np.asarray(named, dtype=np.int64)] = True
    return pa.chunked_array([pa.array(mask)])


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
    """A file's bytes without the records that mention the ids."""

    data: bytes
    removed: int = 0
    by_id: Counter[str] = field(default_factory=Counter)


def scrub(data: bytes, container: str, ids: list[str]) -> Scrubbed:
    """``data`` (a ``json``, ``csv`` or ``avro`` container, gzip'd or not) without the
    records that mention any of ``ids``; the same bytes back when none does."""
    packed = data.startswith(GZIP_MAGIC)
    plain, damage = gunzip_if_needed(data, inflate_limit(len(data))) if packed else (data, None)
    # A damaged gzip's rest (its gzip_damaged record's bytes), kept as it is unless it
    # names one of them: then it goes whole, nothing in it being readable record by record.
    rest = data[damage.at :] if damage is not None else b""
    named = named_in_bytes(rest, ids) if rest else []
    if container != "avro" and not named and not any(n in plain for n in needles_of(ids)):
        return Scrubbed(data)  # the cheap test first: most files never name them
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
        return Scrubbed(data)
    if packed:
        result.data = gzip.compress(result.data, mtime=0) + rest
    return result


def _scrub_container(data: bytes, container: str, ids: list[str]) -> Scrubbed:
    if container == "avro":
        return _scrub_avro(data, ids)
    return _scrub_text(data, ids, header=container == "csv")


def scrub_lines(data: bytes, ids: list[str]) -> Scrubbed:
    """Any bytes, line by line: the lines mentioning an id dropped (files that could not
    be framed at all, such as segments moved aside as unreadable)."""
    kept, result = [], Scrubbed(b"")
    pattern = re.compile(mention_pattern(ids).encode())
    for line in data.splitlines(keepends=True):
        named = mentioned(line.decode("utf-8", "replace"), ids) if pattern.search(line) else []
        if named:
            result.removed += 1
            result.by_id.update(named)
        else:
            kept.append(line)
    result.data = b"".join(kept) if result.removed else data
    return result


def _scrub_text(data: bytes, ids: list[str], *, header: bool) -> Scrubbed:
    if header or data.lstrip(BOM).lstrip()[:1] == b"[":  # CSV, or a JSON array: whole
        return _scrub_framed(data, ids, header=header)
    # JSON lines: only the lines holding an id are looked at (one may hold several
    # objects back to back); every other byte is kept as it is, cheaply.
    pattern = re.compile(mention_pattern(ids).encode())
    kept, result, last = [], Scrubbed(data), 0
    for start, end in _lines_holding(data, needles_of(ids)):
        line = data[start:end]
        if not pattern.search(line):
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


def _lines_holding(data: bytes, needles: list[bytes]) -> list[tuple[int, int]]:
    """(start, end) of every line of ``data`` that holds a needle, in order, each once
    (found by ``bytes.find``: a scan of the whole file at memory speed, not line by line)."""
    spans: set[tuple[int, int]] = set()
    for needle in needles:
        at = data.find(needle)
        while at >= 0:
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at + len(needle))
            end = len(data) if end < 0 else end + 1
            spans.add((start, end))
            at = data.find(needle, end)
    return sorted(spans)


def _scrub_framed(data: bytes, ids: list[str], *, header: bool) -> Scrubbed:
    """Frame ``data`` as the processor does and keep the records that name no id."""
    frame = frame_csv(data) if header else frame_json(data)
    raw = frame.column(RAW)
    if header:
        named = _csv_rows_naming(frame, ids)
        hit = pa.array([bool(n) for n in named])
    else:
        hit = mentions(raw, ids)
        named = [mentioned(text, ids) for text in raw.filter(hit).to_pylist()]
    removed = int(pc.sum(hit).as_py() or 0)
    result = Scrubbed(data, removed)
    if not removed:
        return result
    for names in named:
        result.by_id.update(names)
    kept = [r.rstrip("\n").rstrip("\r") for r in raw.filter(pc.invert(hit)).to_pylist()]
    lines = ([_header_line(data)] if header else []) + kept
    result.data = (BOM if data.startswith(BOM) else b"") + "".join(
        line + "\n" for line in lines
    ).encode()
    return result


def _csv_rows_naming(frame: pa.Table, ids: list[str]) -> list[list[str]]:
    """Per CSV row framed under its header: the ids it names — its ``user_id`` whole, whole
    words of its unknown columns (``extras``); a row the header does not fit (its columns
    cannot be told) as whole words of its text."""
    candidates = mentions(frame.column(RAW), ids).to_numpy(zero_copy_only=False)
    named: list[list[str]] = [[] for _ in range(frame.num_rows)]
    rows = np.flatnonzero(candidates)
    if not len(rows):
        return named
    picked = frame.take(pa.array(rows)).select([RAW, FRAME_ERROR, USER_FIELD, EXTRAS])
    for row, (raw, error, user, extras) in zip(
        rows, zip(*(c.to_pylist() for c in picked.columns), strict=True), strict=True
    ):
        if error is not None:
            named[row] = _words_naming(raw, ids)
            continue
        fields = [(USER_FIELD, user)] + (list(jsonutil.loads(extras).items()) if extras else [])
        named[row] = sorted(named_in_fields(fields, ids))
    return named


def _header_line(data: bytes) -> str:
    text = data.removeprefix(BOM).decode("utf-8", "replace")
    return next((line.rstrip("\r") for line in text.split("\n") if line.strip()), "")


def _scrub_avro(data: bytes, ids: list[str]) -> Scrubbed:
    """Blocks whose (decompressed) bytes hold no id are copied as they are; the others
    are decoded and written again without the records naming one."""
    import fastavro
    from fastavro.write import Writer

    exact = [i.encode() for i in ids]  # an Avro string is its UTF-8 bytes, unescaped
    blocks: list[Any] = list(fastavro.block_reader(io.BytesIO(data)))
    touched = [any(n in b.bytes_.getvalue() for n in exact) for b in blocks]
    result = Scrubbed(data)
    if not any(touched):
        return result
    wanted = set(ids)
    may_name = _screen(ids)
    out = io.BytesIO()
    schema = fastavro.parse_schema(blocks[0].writer_schema)
    writer = Writer(out, schema, codec=blocks[0].codec)
    for block, hit in zip(blocks, touched, strict=True):
        if not hit:
            writer.write_block(block)
            continue
        for record in block:
            named = named_in_fields(record.items(), wanted) if may_name(record) else set()
            if named:
                result.removed += 1
                result.by_id.update(named)
            else:
                writer.write(record)
    writer.flush()
    if result.removed:
        result.data = out.getvalue()
    return result


def _screen(ids: list[str]) -> Callable[[Any], bool]:
    """A cheap first look at a decoded record: False when it cannot name any of ``ids``.

    A block that holds an id is decoded whole, and walking each of its thousands of
    records in Python costs ten times the decoding; the record's ``repr`` (built in C)
    holds every string value as it is, unless the id is one ``repr`` escapes."""
    if not all(i.isprintable() and not set(i) & set("\\'\"") for i in ids):
        return lambda record: True

    def may_name(record: Any) -> bool:
        text = repr(record)
        return any(i in text for i in ids)

    return may_name
