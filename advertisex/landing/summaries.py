"""The words of each landing file, kept beside the ingest index for later erasures.

An erasure reads every landing file once and keeps its words here
(:func:`advertisex.formats.scrubwords.words_of`: a filter of them, or them lz4-packed —
6.5 % of the landing bytes of a generated lake): a later one looks at a file's words
instead of its bytes, and reads only the files they do not rule out. A summary belongs to
the file's bytes as they were read, and says nothing of other bytes, so it is kept under
the file's *identity* — its device, inode, size and modification and change times
(``ctime``, which no program can set back); an object's, its size, ETag, version id and
modification time (:func:`object_identity`) — taken before and after the read: a file
copied back by a restore (new inodes and change times) or changed any other way is
another identity, and its summary is none. A file an erasure rewrites is a new file
(``util.storage.replace_local``): it is summarized from the bytes written, under the
identity of the file written, held open until it is renamed. A summary missing, of
another identity, of another version of the words, or that does not read (a damaged
database or row) is none: the file is read.

One SQLite file, ``_index/blake3/words.db``; for an object-store landing zone and for
``retention.archive``, one a location under ``<data_dir>/words`` (:func:`kept_at`). A
backup leaves them out (a restored file is a new identity anyway), and so does
``pack_markers``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from blake3 import blake3

from advertisex.util import jsonutil

WORDS_DB = "words.db"
# (device, inode, size, modification and change times in ns): a file's bytes as read; an
# object's (:func:`object_identity`) is ("object", size, ETag, version id, modified).
Identity = tuple[int | str, ...]
_CODEC = "lz4"  # unpacked at ≈ 3 GB/s (zstd: 0.6), for ≈ 1.8× the bytes


def identity_of(path: Path) -> Identity | None:
    """The identity of the file at ``path``; None when it is not there."""
    try:
        return identity(os.stat(path))
    except (FileNotFoundError, NotADirectoryError):
        return None


def identity(stat: os.stat_result) -> Identity:
    """The identity a file's status gives it."""
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _decoded(text: str | bytes) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def kept_at(words_dir: Path, location: str) -> Path:
    """The database of the words of the files at ``location`` (the archive's landing
    segments, an object-store landing zone: ``Settings.words_dir``), one a location."""
    return words_dir / f"{blake3(location.encode()).hexdigest()[:32]}.db"


def object_identity(filesystem: Any, path: str) -> Identity | None:
    """The identity of the file or object at ``path`` of a PyArrow ``filesystem``: a local
    file's :func:`identity`; an object's size, ETag, version id and modification time, as
    its store's HEAD answers them. An object store never writes an object in place: a PUT
    makes a new one, with a new modification time and (versioned) version id, and an ETag
    that is the MD5 of its bytes (of its parts' when uploaded in parts; with SSE-KMS or
    SSE-C another value, fresh for each upload). None when it is not there, or the store
    answers no ETag (a summary then cannot be told from another's: the file is read)."""
    if filesystem.type_name == "local":
        return identity_of(Path(path))
    try:
        with filesystem.open_input_file(path) as handle:
            metadata = handle.metadata()
    except (FileNotFoundError, NotADirectoryError):
        return None
    # A dict of text to bytes from PyArrow's input files; a KeyValueMetadata, bytes to bytes.
    pairs = metadata.to_dict() if hasattr(metadata, "to_dict") else dict(metadata or {})
    fields = {_decoded(key): _decoded(value) for key, value in pairs.items()}
    etag, size = fields.get("ETag"), fields.get("Content-Length")
    if not etag or not size or not size.isdigit():
        return None
    return ("object", int(size), etag, fields.get("VersionId", ""), fields.get("Last-Modified", ""))


class WordSummaries:
    """The kept words of a landing zone's files, by segment name (:mod:`this module's
    docstring <advertisex.landing.summaries>`). Reads may come from any thread; writes are
    the caller's one thread's. Every failure of the database is "no summary", never an
    error: they only spare reads."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version
        self._local = threading.local()

    def _db(self, create: bool = False) -> sqlite3.Connection | None:
        db = getattr(self._local, "db", None)
        if db is not None:
            return db
        if not create and not self.path.is_file():
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = _opened(self.path)
        except sqlite3.DatabaseError:
            if not create:
                raise
            # Damaged (a disk fault, a torn copy): a cache, so started again when written.
            self.path.unlink(missing_ok=True)
            db = _opened(self.path)
        self._local.db = db
        return db

    def known(self) -> set[str]:
        """The segments summarized (as of this version of the words), in one query."""
        try:
            db = self._db()
            if db is None:
                return set()
            rows = db.execute("SELECT segment FROM words WHERE version = ?", (self.version,))
            return {name for (name,) in rows.fetchall()}
        except sqlite3.Error:
            return set()

    def words(self, segment: str, identity: Identity) -> bytes | None:
        """The words kept for ``segment`` read as ``identity``, or None."""
        try:
            db = self._db()
            if db is None:
                return None
            row = db.execute(
                "SELECT identity, version, size, packed, digest FROM words WHERE segment = ?",
                (segment,),
            ).fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        kept, version, size, packed, digest = row
        if kept != _text(identity) or version != self.version:
            return None
        if _digest(segment, kept, version, packed) != digest:  # a row damaged on the disk
            return None
        try:
            return _codec().decompress(packed, size, asbytes=True)  # type: ignore[no-any-return]
        except Exception:
            return None

    def update(
        self,
        found: Iterable[tuple[str, Identity, bytes]],
        rewritten: Iterable[str] = (),
        listed: set[str] | None = None,
    ) -> None:
        """In one transaction: keep each (segment, identity it was read as, its words); drop
        the summaries of the segments ``rewritten`` (their words may be a forgotten id's),
        and, given every segment ``listed``, those of the others (retention deleted them)
        and of other versions of the words."""
        codec = _codec()
        rows = []
        for segment, identity, words in found:
            packed = codec.compress(words, asbytes=True)
            kept = _text(identity)
            digest = _digest(segment, kept, self.version, packed)
            rows.append((segment, kept, self.version, len(words), packed, digest))
        gone = set(rewritten)
        with contextlib.suppress(sqlite3.Error, OSError):
            db = self._db(create=bool(rows))
            if db is None:
                return
            if listed is not None:
                for name, version in db.execute("SELECT segment, version FROM words").fetchall():
                    if name not in listed or version != self.version:
                        gone.add(name)
            with db:
                db.executemany("DELETE FROM words WHERE segment = ?", [(n,) for n in gone])
                db.executemany("INSERT OR REPLACE INTO words VALUES (?, ?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _opened(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30)
    try:
        # A deleted row's bytes are overwritten, not left in a free page: the words of a
        # file an erasure rewrote (or retention deleted) may be the forgotten id.
        db.execute("PRAGMA secure_delete = ON")
        db.execute(
            "CREATE TABLE IF NOT EXISTS words (segment TEXT PRIMARY KEY, identity TEXT NOT NULL,"
            " version INTEGER NOT NULL, size INTEGER NOT NULL, packed BLOB NOT NULL,"
            " digest BLOB NOT NULL) WITHOUT ROWID"
        )
    except sqlite3.Error:
        db.close()
        raise
    return db


@functools.cache
def _codec() -> Any:
    import pyarrow as pa

    return pa.Codec(_CODEC)


def _text(identity: Identity) -> str:
    # A number as its digits, a text (an object's ETag, version id) as a JSON string: no two
    # identities have one text, whatever a store puts in its ETags.
    return ",".join(
        str(part) if isinstance(part, int) else jsonutil.dumps_str(part) for part in identity
    )


def _digest(segment: str, identity: str, version: int, packed: bytes) -> bytes:
    return blake3(f"{segment}\n{identity}\n{version}\n".encode() + packed).digest()
