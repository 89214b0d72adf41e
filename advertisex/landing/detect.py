"""Tell which source a file belongs to, from its name and first bytes.

Extensions decide when they are unambiguous; otherwise the content does: an Avro
container's magic bytes, a JSON object or array with impression fields, a CSV header
naming event fields. Files that look like none of them (the generator's truth.json,
a dimension CSV) are not events and are reported as skipped, never guessed.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from advertisex.formats.framing import strip_bom
from advertisex.formats.inflate import GZIP_MAGIC, inflated_until_damage

if TYPE_CHECKING:
    import mmap

SOURCES = ("impressions", "clicks", "bids")
_IMPRESSION_HINTS = (b'"ad_creative_id"', b'"impression_id"', b'"website"')
_CLICK_HINTS = ("event_type",)
_JSON_SUFFIXES = (".ndjson", ".jsonl", ".json")


def detect_source(path: Path, head: bytes) -> str | None:
    """The source of a file whose first bytes are ``head``; None if it is not an event file."""
    head = unwrapped(head)
    if head.startswith(b"Obj\x01"):
        return "bids"
    stripped = head.lstrip()
    if path.suffix.lower() in _JSON_SUFFIXES and not stripped.startswith((b"{", b"[")):
        # JSON lines whose first record is broken (it is quarantined with its reason, not
        # a reason to skip the file): judge by the records after it.
        at = stripped.find(b"\n{")
        stripped = stripped[at + 1 :] if at >= 0 else stripped
    if stripped.startswith((b"{", b"[")):
        return "impressions" if any(h in head for h in _IMPRESSION_HINTS) else None
    first_line = stripped.split(b"\n", 1)[0].decode("utf-8", errors="replace").lower()
    if any(h in first_line for h in _CLICK_HINTS) and "user_id" in first_line:
        return "clicks"
    return None


# Files whose first bytes say they are something ingest cannot read — another compression,
# an archive or a columnar file — and what to do about each. Landed
# (with --source), every record would be quarantined as unreadable bytes.
_FOREIGN = (
    (b"BZh91AY&SY", "compressed with bzip2"),  # any block size: see below
    (b"\xfd7zXZ\x00", "compressed with xz"),
    (b"\x28\xb5\x2f\xfd", "compressed with zstd"),
    (b"\x04\x22\x4d\x18", "compressed with LZ4"),
    (b"PK\x03\x04", "a zip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"PAR1", "a Parquet file"),
)
# A UTF-16 file's byte order marks: a plain one is converted (:func:`from_utf16`), one
# gzip'd is refused (:func:`foreign_format`).
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def foreign_format(head: bytes, inflated: bytes = b"") -> str | None:
    """Why a file whose first bytes are ``head`` cannot be ingested as it is, and what to do;
    None when it may be (gzip'd or plain text, an Avro container). ``inflated``: a gzip'd
    file's first bytes un-gzipped (:func:`unwrapped`), for what the gzip holds.

    >>> print(foreign_format(b"PK\\x03\\x04..."))
    a zip archive: ingest reads JSON, CSV and Avro files, each maybe gzip'd; unpack it and ingest its files
    >>> print(foreign_format(b"\\x1f\\x8b...", b"\\xff\\xfe{"))
    UTF-16 text, gzip'd: ingest converts UTF-16 files that are not gzip'd; un-gzip it
    >>> foreign_format(b'{"a": 1}') is None
    True
    """
    what = _foreign(head)
    if what is None and head.startswith(GZIP_MAGIC):
        inside = "UTF-16 text" if inflated[:2] in _UTF16_BOMS else _foreign(inflated)
        what = inside and f"{inside}, gzip'd"
    if what is None:
        return None
    if what.startswith("UTF-16 text"):  # gzip'd: a plain one is converted (from_utf16)
        return f"{what}: ingest converts UTF-16 files that are not gzip'd; un-gzip it"
    if what.startswith("compressed"):
        todo = "decompress it (or gzip it) and ingest it again"
    elif "archive" in what:
        todo = "unpack it and ingest its files"
    else:
        todo = "export its rows as JSON lines or CSV and ingest those"
    return f"{what}: ingest reads JSON, CSV and Avro files, each maybe gzip'd; {todo}"


def from_utf16(data: bytes | memoryview | mmap.mmap) -> bytes | str | None:
    """A UTF-16 file (with its byte order mark: Excel's "Unicode text", Windows tools) as
    UTF-8; why not, when it does not decode as UTF-16; None when it is not one.

    >>> from_utf16("\\ufeffa,b".encode("utf-16-le"))
    b'a,b'
    >>> from_utf16(b'{"a": 1}') is None
    True
    """
    if bytes(data[:2]) not in _UTF16_BOMS:
        return None
    try:
        return bytes(data).decode("utf-16").encode("utf-8")
    except UnicodeDecodeError as error:
        return (
            f"UTF-16 text that does not decode ({error.reason} at byte {error.start:,}); "
            "save the file as UTF-8 and ingest it again"
        )


def _foreign(head: bytes) -> str | None:
    """What :data:`_FOREIGN` says a file starting with ``head`` is (None: none of them)."""
    if head[:3] == b"BZh" and head[3:4].isdigit():  # bzip2 of any block size
        head = b"BZh9" + head[4:]
    return next((what for magic, what in _FOREIGN if head.startswith(magic)), None)


def landing_format(source: str, head: bytes) -> str | None:
    """How a file of ``source`` whose first bytes are ``head`` lands (``ndjson`` or ``avro``),
    where that is not the source's usual format; None where it is. Bids are Avro unless
    they are not an Avro container (then JSON: the only other form bids arrive in), clicks
    CSV unless they are JSON objects. Named by the source alone, bids sent as JSON lines
    were decoded as Avro and set aside whole (``avro_unreadable``)."""
    head = unwrapped(head)
    if source == "bids":
        return None if head.startswith(b"Obj\x01") else "ndjson"
    if source == "clicks" and head.lstrip().startswith((b"{", b"[")):
        return "ndjson"
    return None


def unwrapped(head: bytes) -> bytes:
    """A file's first bytes as its records start: un-gzipped (as far as they go: up to the
    head's end, or to where the stream is damaged), no BOM (the same bytes again when they
    are so already: the functions here take either)."""
    if head.startswith(GZIP_MAGIC):
        try:
            head = gzip.decompress(head)
        except (OSError, EOFError, zlib.error):
            head = inflated_until_damage(head)
    return strip_bom(head)
