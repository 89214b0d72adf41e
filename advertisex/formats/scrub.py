"""Remove every record that mentions some ids from a file's bytes, in its own format.

This is how a user's erasure reaches the landing zone: a segment is framed with the
same decoders the processor uses (JSON objects, CSV rows), the records naming a
forgotten id are dropped, and the rest is written back in the same container — NDJSON,
CSV with its header, Avro with its writer schema and codec, gzip again if it was gzip.

A record *mentions* an id when the id appears in its text as a whole value: bounded
by quotes, delimiters or the ends of the text, not inside a longer word — so erasing
``u1`` leaves ``u12`` alone. :func:`mention_pattern` is the one definition, used for
raw text in the tables too (quarantine records, invalid-traffic records).
"""

from __future__ import annotations

import base64
import gzip
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.formats.bounded import gunzip_if_needed
from advertisex.formats.csvfmt import frame_csv
from advertisex.formats.framing import BOM, RAW, UNDECODED
from advertisex.formats.inflate import (
    DEFLATE_WBITS,
    GZIP_MAGIC,
    GZIP_WBITS,
    inflate_limit,
    inflated_until_damage,
)
from advertisex.formats.jsonfmt import frame_json
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
    """The ids ``text`` mentions (in the bytes it stands for, when it is :data:`UNDECODED`)."""
    if text.startswith(UNDECODED):
        return named_in_bytes(base64.b64decode(text[len(UNDECODED) :]), ids)
    return [i for i in ids if re.search(mention_pattern([i]), text)]


def named_in_bytes(data: bytes, ids: Iterable[str]) -> list[str]:
    """The ids bytes that could not be decoded name (:func:`searchable_parts`)."""
    parts = searchable_parts(data)
    return [i for i in ids if any(re.search(mention_pattern([i]).encode(), p) for p in parts)]


def mentions(column: pa.ChunkedArray | pa.Array, ids: Iterable[str]) -> pa.ChunkedArray:
    """Per row of a text column: whether it mentions any of ``ids`` (null text: no). A raw
    text that stands for undecoded bytes (:data:`UNDECODED`) is looked into: its bytes, and
    what they inflate to (:func:`searchable_parts`)."""
    ids = list(ids)
    found = pc.fill_null(pc.match_substring_regex(column, mention_pattern(ids)), False)
    undecoded = pc.and_(pc.fill_null(pc.starts_with(column, UNDECODED), False), pc.invert(found))
    rows = np.flatnonzero(undecoded.to_numpy(zero_copy_only=False))
    if not len(rows):
        return found
    texts = column.take(pa.array(rows)).to_pylist()
    named = [r for r, text in zip(rows, texts, strict=True) if mentioned(text, ids)]
    if not named:
        return found
    mask = np.zeros(len(column), dtype=bool)
    mask[named] = True
    return pc.or_(found, pa.array(mask))


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
        if pattern.search(line):
            result.removed += 1
            result.by_id.update(mentioned(line.decode("utf-8", "replace"), ids))
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
        kept.append(data[last:start])
        last = end
        if _one_object(line):  # the usual line: one record, theirs
            result.removed += 1
            result.by_id.update(mentioned(line.decode("utf-8", "replace"), ids))
            continue
        part = _scrub_framed(line, ids, header=False)  # objects back to back, or junk
        result.removed += part.removed
        result.by_id.update(part.by_id)
        kept.append(part.data if part.removed else line)
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


def _one_object(line: bytes) -> bool:
    try:
        return type(jsonutil.loads(line)) is dict
    except jsonutil.JSONDecodeError:
        return False


def _scrub_framed(data: bytes, ids: list[str], *, header: bool) -> Scrubbed:
    """Frame ``data`` as the processor does and keep the records that mention no id."""
    frame = frame_csv(data) if header else frame_json(data)
    raw = frame.column(RAW)
    hit = mentions(raw, ids)
    removed = int(pc.sum(hit).as_py() or 0)
    result = Scrubbed(data, removed)
    if not removed:
        return result
    for text in raw.filter(hit).to_pylist():
        result.by_id.update(mentioned(text, ids))
    kept = [r.rstrip("\n").rstrip("\r") for r in raw.filter(pc.invert(hit)).to_pylist()]
    lines = ([_header_line(data)] if header else []) + kept
    result.data = (BOM if data.startswith(BOM) else b"") + "".join(
        line + "\n" for line in lines
    ).encode()
    return result


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
            named = _named(record, wanted) if may_name(record) else set()
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


def _named(record: Any, wanted: set[str]) -> set[str]:
    """The ``wanted`` strings inside an Avro record (nested records, maps, arrays too)."""
    found: set[str] = set()
    stack = [record]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if value in wanted:
                found.add(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return found
