"""Turn a request body into landing bytes, or refuse it whole: the collector's pure core.

Every framer takes the (decoded) body and returns :class:`Framed` — the exact bytes to
append to a landing segment and how many records they hold — or raises
:class:`FramingError` naming the first line, item or byte offset it could not frame.
Nothing here does I/O, so a request is either entirely framed or entirely refused
before a byte of it reaches the disk.

Framing is deliberately shallow: each NDJSON line must be one JSON object, each CSV row
must fit its header, an Avro container must read block by block. Whether an object
carries a ``user_id`` is validation, done by the processor, which quarantines what
fails — exactly as for batch files.
"""

from __future__ import annotations

import csv
import io
import zlib
from dataclasses import dataclass

from advertisex.errors import FramingError
from advertisex.formats.csvfmt import DELIMITERS
from advertisex.formats.framing import BOM
from advertisex.formats.jsonfmt import json_kind
from advertisex.model.contracts import CLICK_ALIASES, CLICK_REQUIRED
from advertisex.util import jsonutil

_GZIP_PIECE = 16 << 10  # bytes of a gzip body fed to the inflater at a time


@dataclass(frozen=True)
class Framed:
    data: bytes  # what is appended to the segment, ends with a newline for NDJSON
    records: int


def decode_body(body: bytes, encoding: str | None, max_decoded: int) -> bytes:
    """Undo ``Content-Encoding`` (identity or gzip); a truncated or oversize stream is refused.

    A gzip body may be several gzip members one after another (``cat a.gz b.gz``, as some
    clients and Firehose-like senders write it): all of them are read, as from a file, and
    ``max_decoded`` bounds what they inflate to together. Zero bytes after the last member
    are padding."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise FramingError(
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding",
            status=415,
        )
    view = memoryview(body)
    parts: list[bytes] = []
    size = position = members = 0
    while True:
        members += 1
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not inflater.eof and position < len(view):
            # Fed a piece at a time: the bytes after a member's end are copied into
            # ``unused_data``, and 4 MiB of 20-byte empty members copied the rest of the
            # body for each (100 s); a piece bounds the copy.
            piece = view[position : position + _GZIP_PIECE]
            try:
                # max_length bounds memory: a zip bomb stops at the limit, not at RAM's.
                out = inflater.decompress(piece, max_decoded + 1 - size)
            except zlib.error as error:
                which = "gzip body" if members == 1 else f"gzip member {members}"
                raise FramingError("gzip_invalid", f"{which} is corrupt: {error}") from error
            size += len(out)
            if size > max_decoded:
                raise FramingError(
                    "body_too_large",
                    f"body inflates to more than {max_decoded} bytes; send smaller requests",
                    status=413,
                )
            parts.append(out)
            # below max_length, the piece was taken whole: what is left is the next member's
            position += len(piece) - len(inflater.unused_data)
        if not inflater.eof:
            raise FramingError(
                "gzip_invalid", f"gzip body is truncated after {len(body)} bytes (no end of stream)"
            )
        if view[position : position + 2] != b"\x1f\x8b":  # no gzip member follows
            if bytes(view[position:]).strip(b"\x00"):  # zero bytes are padding
                raise FramingError(
                    "gzip_invalid",
                    f"byte {position}: bytes that are not gzip follow gzip member {members}",
                )
            return parts[0] if len(parts) == 1 else b"".join(parts)


def frame_ndjson(
    body: bytes, *, lenient_json: bool = False, max_records: int | None = None
) -> Framed:
    """One JSON object per line; blank lines are ignored. The body is stored as sent.

    ``lenient_json`` (``application/json``) also takes a JSON array or a single,
    possibly pretty-printed, object. More than ``max_records`` records are refused as soon
    as they are counted (413 ``too_many_records``), as by every framer here: framing runs
    on the event loop, and 4 MiB of short lines are a million records.
    """
    body = body[3:] if body.startswith(BOM) else body
    if lenient_json and body.lstrip()[:1] == b"[":
        return frame_json_array(body, max_records=max_records)
    records = 0
    loads = jsonutil.loads
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line or line.isspace():
            continue  # blank line: not a record (a failed parse costs 1.4 µs: 4 MiB of "\n", 6 s)
        try:
            value = loads(line)
        except jsonutil.JSONDecodeError as error:
            if lenient_json and records == 0:
                return _single_object(body, f"line {number}: not valid JSON ({error.msg})")
            raise FramingError(
                "json_invalid", f"line {number}: not valid JSON ({error.msg}){_array_hint(line)}"
            ) from None
        if type(value) is not dict:
            if lenient_json and records == 0:
                return _single_object(body, f"line {number}: a JSON {json_kind(value)}")
            raise FramingError(
                "json_not_object",
                f"line {number}: a JSON {json_kind(value)}, expected one object per line",
            )
        records += 1
        if max_records is not None and records > max_records:
            raise too_many_records(max_records)
    if not records:
        raise FramingError("empty_body", "the body holds no records")
    return Framed(body if body.endswith(b"\n") else body + b"\n", records)


def frame_json_array(body: bytes, *, max_records: int | None = None) -> Framed:
    """A JSON array of objects, re-encoded one object per line."""
    try:
        items = jsonutil.loads(body)
    except jsonutil.JSONDecodeError as error:
        raise FramingError(
            "json_invalid", f"byte {error.pos}: not a valid JSON array ({error.msg})"
        ) from None
    if not isinstance(items, list):
        raise FramingError(
            "json_not_object", f"a JSON {json_kind(items)}, expected an array of objects"
        )
    if max_records is not None and len(items) > max_records:
        raise too_many_records(max_records)
    for index, item in enumerate(items, start=1):
        if type(item) is not dict:
            raise FramingError(
                "json_not_object", f"item {index}: a JSON {json_kind(item)}, expected an object"
            )
    if not items:
        raise FramingError("empty_body", "the array holds no records")
    return Framed(b"".join(jsonutil.dumps(item) + b"\n" for item in items), len(items))


def _single_object(body: bytes, line_error: str) -> Framed:
    """``application/json`` holding one (pretty-printed) object; else the line error stands."""
    try:
        value = jsonutil.loads(body)
    except jsonutil.JSONDecodeError:
        raise FramingError("json_invalid", line_error) from None
    if type(value) is not dict:
        raise FramingError("json_not_object", f"{line_error}, expected JSON objects")
    return Framed(jsonutil.dumps(value) + b"\n", 1)


def frame_csv_clicks(body: bytes, *, max_records: int | None = None) -> Framed:
    """Click/conversion CSV with a header → one JSON object per row, keyed by canonical names.

    Empty cells are left out (the CSV decoder reads them as null too); a row whose field
    count differs from the header's is refused, as it cannot be keyed.
    """
    body = body[3:] if body.startswith(BOM) else body
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        line = body.count(b"\n", 0, error.start) + 1
        raise FramingError("encoding_invalid", f"line {line}: not UTF-8 ({error.reason})") from None
    # The header is the first line that is not blank; found without a list of every line
    # (4 MiB of blank lines are 4 million of them).
    blank = len(text) - len(text.lstrip())
    if blank == len(text):
        raise FramingError("empty_body", "the body holds no CSV header and no rows")
    begin = text.rfind("\n", 0, blank) + 1
    start = text.count("\n", 0, begin)
    end = text.find("\n", begin)
    header_line = text[begin:] if end < 0 else text[begin:end]
    counts = {d: header_line.count(d) for d in DELIMITERS}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    reader = csv.reader(io.StringIO(text[begin:]), delimiter=delimiter, strict=True)
    try:
        header = [_column_name(name) for name in next(reader)]
        if sum(name in CLICK_REQUIRED for name in header) < 2:
            raise FramingError(
                "csv_header_missing",
                f"line {start + 1}: no header row; the first line must name the columns "
                f"(e.g. {','.join(CLICK_REQUIRED)})",
            )
        repeated = sorted({name for name in header if name and header.count(name) > 1})
        if repeated:
            raise FramingError(
                "csv_header_duplicate",
                f"line {start + 1}: the header names {', '.join(repeated)} twice; which value "
                "is a row's cannot be told: name each column once",
            )
        out: list[bytes] = []
        for fields in reader:
            if not fields or not "".join(fields).strip():
                continue  # a blank row (a generator per row made 4 MiB of them cost 1 s)
            if len(fields) != len(header):
                raise FramingError(
                    "csv_column_count",
                    f"line {start + reader.line_num}: {len(fields)} fields, the header has "
                    f"{len(header)}",
                )
            row = {k: v.strip() for k, v in zip(header, fields, strict=True) if k and v.strip()}
            out.append(jsonutil.dumps(row) + b"\n")
            if max_records is not None and len(out) > max_records:
                raise too_many_records(max_records)
    except csv.Error as error:
        raise FramingError("csv_invalid", f"line {start + reader.line_num}: {error}") from None
    if not out:
        raise FramingError("empty_body", "the CSV has a header but no rows")
    return Framed(b"".join(out), len(out))


def frame_avro(body: bytes, max_decoded: int = 32 << 20) -> Framed:
    """An Avro object container, read in full before it is acknowledged.

    The strict reading (:func:`~advertisex.formats.avrofmt.check_avro`): the writer schema
    is a record, blocks inflate within ``max_decoded`` bytes, and each holds exactly its
    declared records. Then the processor's own decoder reads it, so what is acknowledged
    is what the processor can read. Costly (milliseconds per 500 records) and unbounded
    in native code, so the collector runs this in a decoder worker under a time and
    memory budget (:meth:`Collector.frame`), never on the event loop.
    """
    from advertisex.formats.avrofmt import AvroInvalid, AvroTooLarge, check_avro
    from advertisex.formats.avrofmt import frame_avro as decode_avro

    try:
        records = check_avro(body, max_decoded)
    except AvroTooLarge as error:
        raise FramingError(
            "body_too_large",
            f"{error}: the Avro blocks inflate to more than {max_decoded} bytes; "
            "send smaller requests",
            status=413,
        ) from None
    except AvroInvalid as error:
        raise FramingError(
            "avro_invalid", f"{error}; not an Avro container this collector can read"
        ) from None
    if not records:
        raise FramingError("empty_body", "the Avro container holds no records")
    try:
        decode_avro(body)
    except Exception as error:  # a record nested past what Python renders (RecursionError) …
        raise FramingError(
            "avro_invalid",
            f"the processor's decoder cannot read it ({type(error).__name__}: {error}); "
            "nothing was stored",
        ) from None
    return Framed(body, records)


def frame_gzipped_avro(body: bytes, encoding: str | None, max_decoded: int) -> Framed:
    """:func:`frame_avro` after undoing ``Content-Encoding`` (in the worker, too)."""
    return frame_avro(decode_body(body, encoding, max_decoded), max_decoded)


def too_many_records(limit: int) -> FramingError:
    return FramingError(
        "too_many_records",
        f"more than {limit} records in one request; split the batch",
        status=413,
    )


def _column_name(name: str) -> str:
    name = name.strip().strip('"').strip().lower()
    return CLICK_ALIASES.get(name, name)


def _array_hint(line: bytes) -> str:
    return " (a JSON array must be sent as application/json)" if line.lstrip()[:1] == b"[" else ""
