"""The landing zone: immutable segment files per source, the processor's only input.

Layout: ``<landing>/<source>/<YYYY-MM-DD>/<HH>/<segment>``. A segment name starts with
its UTC landing time, so name order is arrival order. Segments are written to a
temporary name, fsync'd, then renamed into place: a visible segment is complete
(sealed). Batch ingest copies a file in by the kernel, into an unnamed file that is
fsync'd and then named (:mod:`advertisex.landing.staged`), where the platform allows.
Batch-ingested files are also indexed by content hash (``_index/``), so ingesting the
same bytes twice lands them once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import mmap
import os
import re
import secrets
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Callable, Container, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blake3 import blake3

from advertisex.errors import StorageError, UserInputError
from advertisex.landing.detect import (
    SOURCES,
    detect_source,
    foreign_format,
    from_utf16,
    landing_format,
    unwrapped,
)
from advertisex.landing.staged import StagedCopy, Unsupported, stage
from advertisex.landing.summaries import (
    WORDS_DB,
    Identity,
    WordSummaries,
    identity_of,
    kept_at,
    object_identity,
)
from advertisex.landing.summaries import identity as _identity
from advertisex.util.mapped import MappedFile, map_file
from advertisex.util.storage import (
    fsync_all,
    fsync_path,
    make_folders,
    os_reason,
    replace_local,
    start_writeback,
)
from advertisex.util.timeutil import utcnow

if TYPE_CHECKING:
    import pyarrow as pa

    from advertisex.config import Settings

# A file's bytes as ingest holds them: read into memory, or its staged copy mapped.
FileBytes = bytes | memoryview | mmap.mmap

# Where earlier versions moved segments they could not read (now a segment set aside stays
# in place as a quarantine entry); still listed, so forget and retention see those files.
UNREADABLE = "_unreadable"
# Default container format per source; any source may also land NDJSON (the collector
# and the Firehose API write JSON objects for all three).
_EXTENSIONS = {"impressions": ".ndjson", "clicks": ".csv", "bids": ".avro"}
FORMATS = {"ndjson": ".ndjson", "csv": ".csv", "avro": ".avro"}


@dataclass(frozen=True)
class Segment:
    source: str
    name: str  # path relative to the landing root, with forward slashes
    size: int


# Why ingest skips a file whose source it cannot tell (``--source`` names it).
NOT_RECOGNISED = (
    "not recognised as impressions (JSON), clicks (CSV) or bids (Avro); pass --source if it is one"
)


@dataclass(frozen=True)
class IngestResult:
    path: str
    status: str  # landed | already | skipped
    source: str | None = None
    segment: str | None = None
    detail: str | None = None
    bytes: int = 0


@dataclass(frozen=True)
class ReadFile:
    """A file read for ingest: its bytes, source and content hash. ``data`` is either the
    bytes of its copy staged in the landing zone (``staged``: landing names that copy) or a
    view of a buffer that the reading thread reuses (:class:`ReadBuffer`): land it before
    that thread reads the next file. :meth:`release` once it is landed or judged."""

    path: Path
    data: FileBytes
    source: str
    digest: str  # content hash (:func:`content_hash`), hex
    # The SHA-256 of the bytes, hex, when the lake holds markers of that earlier index
    # (:func:`legacy_marker`); None when it holds none.
    legacy_digest: str | None = None
    staged: StagedCopy | None = None  # the bytes, copied into the landing zone unnamed
    # How its records are written (a landing format: ``FORMATS``), where it is not its
    # source's usual one: bids sent as JSON are landed as JSON, not named Avro.
    fmt: str | None = None

    @property
    def label(self) -> str:
        return f"file-{self.digest[:16]}"

    def name_at(self, at: datetime) -> str:
        """The segment name this file lands as at ``at``."""
        return segment_name(self.source, fmt=self.fmt, label=self.label, at=at)

    def release(self) -> None:
        """Let the staged copy go (unless landed, it disappears)."""
        if self.staged is not None:
            self.staged.close()


# A folder not modified for this long is "settled": its listing is kept and reused while its
# modification time stays the same. A file renamed into a folder always moves the folder's
# modification time on — unless it lands in the same tick of the file system's clock as the
# change before it (a few ms on Linux, 2 s on FAT): a folder changed less than this ago is
# listed again at every pass, so no such tick is ever trusted.
SETTLED_AFTER_NS = 5_000_000_000


@dataclass(frozen=True)
class _Listing:
    """One folder's entries when it was listed: every name in it, and of those the segments
    (named from the landing root; dot-names left out: still being written) and subfolders."""

    folder: str
    modified_ns: int
    settled: bool  # unchanged for SETTLED_AFTER_NS when listed: reused while mtime stays
    names: frozenset[str]
    files: frozenset[str]  # sets, so a pass compares them with what it knows in C, not Python
    folders: frozenset[str]


@dataclass(frozen=True)
class _Left:
    """What of a folder's ``listing`` was not in the ``skip`` set of the last pass."""

    listing: _Listing
    skip: weakref.ref[Any]  # that very set (a weak reference: a new set is never taken for it)
    names: frozenset[str]


class LandingZone:
    def __init__(self, root: Path) -> None:
        self.root = root
        # Folder listings kept by a follower's passes (``segments(since=…)``), by path: without
        # them each pass would read every folder of the day again — the longer the day, the
        # longer the pass (a day of micro-batches lands tens of thousands of segments). Only
        # the days from ``since`` on are kept, so a process that runs for months holds a
        # day or two of names, not the landing zone's.
        self._listings: dict[str, _Listing] = {}
        self._left: dict[str, _Left] = {}  # by folder: see _unskipped
        self._legacy_index: bool | None = None  # see _has_legacy_index
        self._unsynced: set[Path] = set()  # index markers placed, not yet fsync'd
        self._unsynced_lock = threading.Lock()
        self._packed = threading.local()  # each thread's connection to the packed markers
        # Ingest copies files in by the kernel (landing.staged) while it can: Linux's O_TMPFILE.
        self._staging = hasattr(os, "O_TMPFILE")

    # ------------------------------------------------------------------ writing
    def new_segment_path(
        self,
        source: str,
        *,
        fmt: str | None = None,
        label: str = "",
        at: datetime | None = None,
        fsync: bool = True,
    ) -> tuple[str, Path, Path]:
        """(relative name, final path, temporary path) for a new segment of ``source``.

        Writers fill the temporary path (invisible to the processor: it starts with a
        dot), fsync it, then call :meth:`seal`. ``label`` must make names unique among
        concurrent writers (collector id + sequence number, or a content hash). Each
        folder made for it is flushed in its parent (``fsync``): the segment's name
        flushed in a folder that a power cut loses with its own name is lost with it.
        """
        relative = segment_name(source, fmt=fmt, label=label, at=at)
        final = self.root / relative
        make_folders(final.parent, fsync)
        return relative, final, final.with_name("." + final.name + ".tmp")

    def unsealed(self) -> list[Path]:
        """Temporary files of segments still being written (or left by a crash), in name
        order: the :meth:`new_segment_path` names that were never sealed."""
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob("*/*/*/.*.tmp"))

    def seal(self, temporary: Path, final: Path, *, fsync: bool = True) -> None:
        """Publish a fully written (and fsync'd) temporary segment under its final name."""
        os.replace(temporary, final)
        if fsync:
            fsync_path(final.parent)

    def write_segment(
        self,
        source: str,
        data: FileBytes,
        *,
        fmt: str | None = None,
        label: str = "",
        at: datetime | None = None,
        fsync: bool = True,
    ) -> Segment:
        """Write ``data`` as a new sealed segment of ``source`` and return it; a write that
        fails (a full disk) is a :class:`~advertisex.errors.StorageError` and leaves nothing,
        not even the temporary file."""
        try:
            relative, final, temporary = self.new_segment_path(
                source, fmt=fmt, label=label, at=at, fsync=fsync
            )
        except OSError as error:
            raise self._not_written(error) from error
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                if fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            self.seal(temporary, final, fsync=fsync)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise self._not_written(error) from error
        return Segment(source, relative, len(data))

    def _not_written(self, error: OSError) -> StorageError:
        return StorageError(
            f"cannot write a landing segment under {self.root}: {os_reason(error)}; "
            "nothing of this file landed",
            hint="free space or fix the storage, then run the same command again: "
            "what landed already is skipped",
        )

    def ingest_files(
        self,
        paths: list[Path],
        source: str | None = None,
        done: Callable[[int], None] | None = None,
        walked: dict[Path, Path] | None = None,
    ) -> list[IngestResult]:
        """:meth:`ingest_file` of each path, several at once (:class:`Ingest`), results in
        the order given; ``done(n)`` is told after each of the first ``n`` results.
        ``walked``: the folder each path was found in by :func:`expand_paths`."""
        ingest = Ingest(self, source, walked)
        for path in paths:
            ingest.add(path)
        return ingest.results(done)

    def ingest_file(
        self, path: Path, source: str | None = None, at: datetime | None = None
    ) -> IngestResult:
        """Copy one file into the landing zone (no-op when the same bytes landed before);
        ``at``: its landing time (default now)."""
        read = self.read_for_ingest(path, source)
        if isinstance(read, IngestResult):
            return read
        try:
            return self.already(read) or self.land(read, at)
        finally:
            read.release()
            self.sync_markers()

    def read_for_ingest(
        self,
        path: Path,
        source: str | None = None,
        buffer: ReadBuffer | None = None,
        within: Path | None = None,
    ) -> ReadFile | IngestResult:
        """``path``'s bytes, source (detected unless given) and content hash; or why it
        is skipped. The bytes are those of its copy staged in the landing zone where the
        kernel can make one (:mod:`advertisex.landing.staged`); else they are read, into
        ``buffer`` (the result is a view of it) instead of new memory when given.
        ``within``: the folder a walk found ``path`` in; what is read must be a regular
        file inside it when opened (:func:`open_within`), whatever the walk saw."""
        opened: int | None = None
        if within is not None:
            found = open_within(path, within)
            if isinstance(found, str):
                return IngestResult(str(path), "skipped", detail=found)
            opened = found
        try:
            return self._read_for_ingest(path, source, buffer, opened)
        finally:
            if opened is not None:
                os.close(opened)

    def _read_for_ingest(
        self, path: Path, source: str | None, buffer: ReadBuffer | None, opened: int | None
    ) -> ReadFile | IngestResult:
        staged = self._stage(path, opened)
        if isinstance(staged, IngestResult):
            return staged
        data: FileBytes
        if staged is not None:
            data = staged.view
        else:
            what = path if opened is None else opened
            try:
                data = buffer.read(what) if buffer is not None else _read_all(what)
            except OSError as e:
                return IngestResult(str(path), "skipped", detail=f"cannot read: {e.strerror}")
        utf8 = from_utf16(data)
        if utf8 is not None:  # landed as UTF-8, indexed by its own bytes' hash
            size, digest = len(data), content_hash(data)
            if staged is not None:  # the UTF-16 bytes: not what lands
                staged.close()
            if isinstance(utf8, str):
                return IngestResult(str(path), "skipped", bytes=size, detail=utf8)
            return self._judged(path, utf8, source, None, digest=digest)
        read = self._judged(path, data, source, staged)
        if isinstance(read, IngestResult) and staged is not None:
            staged.close()
        return read

    def _judged(
        self,
        path: Path,
        data: FileBytes,
        source: str | None,
        staged: StagedCopy | None,
        digest: str | None = None,
    ) -> ReadFile | IngestResult:
        """A read file's source and landing format, or why it is skipped; ``digest``: its
        content hash when ``data`` is not its bytes as they are (transcoded)."""
        if _NOT_SPACE.search(data) is None:  # not data.strip(): that copies the whole file
            return IngestResult(str(path), "skipped", detail="empty file: nothing to ingest")
        head = unwrapped(bytes(data[:65536]))  # un-gzipped once, for the source and the format
        foreign = foreign_format(bytes(data[:16]), head[:16])  # even with --source: no reader
        if foreign is not None:
            return IngestResult(str(path), "skipped", bytes=len(data), detail=foreign)
        detected = source or detect_source(path, head)
        if detected is None:
            return IngestResult(
                str(path),
                "skipped",
                bytes=len(data),
                detail=NOT_RECOGNISED,
            )
        legacy = hashlib.sha256(data).hexdigest() if self._has_legacy_index() else None
        fmt = landing_format(detected, head)
        return ReadFile(path, data, detected, digest or content_hash(data), legacy, staged, fmt)

    def _stage(self, path: Path, opened: int | None = None) -> StagedCopy | IngestResult | None:
        """``path`` (``opened`` when given, its open descriptor) copied into the landing
        zone unnamed (:func:`~.staged.stage`), why it is skipped when it cannot be opened,
        or None: read it (this zone cannot stage, or the copy failed — the read and the
        write then say why, as they always have)."""
        if not self._staging:
            return None
        source = opened
        if source is None:
            try:
                # A pipe or a device is read as it comes, and never opened here: opening a
                # pipe waits for its writer, and closing it again would break its pipe.
                if not stat.S_ISREG(os.stat(path).st_mode):
                    return None
                source = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError as e:
                return IngestResult(str(path), "skipped", detail=f"cannot read: {e.strerror}")
        try:
            if not stat.S_ISREG(os.fstat(source).st_mode):  # replaced since: read it instead
                return None
            make_folders(self.root)
            return stage(source, self.root)
        except Unsupported:
            self._staging = False
            return None
        except OSError:
            return None
        finally:
            if opened is None:
                os.close(source)

    def already(self, read: ReadFile) -> IngestResult | None:
        """The result of a file whose bytes landed before; None when they did not."""
        landed = self._marked(marker(read.digest))
        if landed is None and read.legacy_digest is not None:
            landed = self._marked(legacy_marker(read.legacy_digest))
        if landed is None:
            return None
        return IngestResult(str(read.path), "already", read.source, landed, bytes=len(read.data))

    def land(self, read: ReadFile, at: datetime | None = None) -> IngestResult:
        """Land a read file as a new segment landed at ``at`` (its staged copy named, else
        its bytes written) and index its content hash: both, or (a full disk) neither."""
        at = at or utcnow()
        with self._indexing(read.digest, read.name_at(at)):
            name = self._link_staged(read, at) if read.staged is not None else None
            if name is None:
                name = self.write_segment(
                    read.source, read.data, fmt=read.fmt, label=read.label, at=at
                ).name
        return IngestResult(str(read.path), "landed", read.source, name, bytes=len(read.data))

    @contextlib.contextmanager
    def _indexing(self, digest: str, name: str) -> Iterator[None]:
        """Index ``digest`` as the segment ``name`` that the body lands. The marker is
        written under a pending name before the segment appears and renamed into place
        after it: a full disk stops the ingest before anything is visible, and a file whose
        segment landed always has its marker (else an ingest run again would land it twice).
        A marker that cannot be renamed into place takes its segment away with it.

        The marker is fsync'd with the others of the run (:meth:`sync_markers`), once its
        ingest is done: a power cut before leaves the segment on disk (fsync'd) and its
        marker perhaps still under its pending name, which the next look-up of those bytes
        puts in place (:meth:`_marked`) instead of landing them again. Made durable here, as
        each file landed (three more fsyncs a file), they took an ingest of 2,000 small
        files from 1.8-2.7 s to 3.2-3.3 s; at the end, ≈ 0.1-0.2 s more."""
        path = self.root / marker(digest)
        pending = _pending(path)
        try:
            make_folders(path.parent)
            pending.write_text(name + "\n")
        except OSError as error:
            pending.unlink(missing_ok=True)
            raise self._not_written(error) from error
        try:
            yield
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        try:
            os.replace(pending, path)
        except FileNotFoundError:  # another ingest's look-up put it in place (:meth:`_marked`)
            if self._marked(marker(digest)) != name:
                (self.root / name).unlink(missing_ok=True)
                raise self._not_written(FileNotFoundError(2, "index marker gone")) from None
        except OSError as error:
            pending.unlink(missing_ok=True)
            (self.root / name).unlink(missing_ok=True)
            raise self._not_written(error) from error
        start_writeback(str(path))  # on its way to the disk by the fsync at the end
        with self._unsynced_lock:
            self._unsynced.add(path)

    def sync_markers(self) -> None:
        """fsync the index markers placed since the last call, and their folders: an ingest
        calls this before it says what landed (their writeback started as each was placed)."""
        with self._unsynced_lock:
            paths, self._unsynced = self._unsynced, set()
        # Together: one after the other they were ≈ a third of a 2 M-event ingest's time.
        fsync_all(sorted(paths))
        fsync_all(sorted({path.parent for path in paths}))

    def _index(self, digest: str, name: str) -> None:
        """Index ``digest`` as the existing segment ``name``."""
        path = self.root / marker(digest)
        make_folders(path.parent)
        pending = _pending(path)
        _write_durably(pending, name + "\n")
        _publish(pending, path)

    def _link_staged(self, read: ReadFile, at: datetime | None) -> str | None:
        """The segment's name once ``read``'s staged copy is linked under it; None where
        this zone cannot link it (its bytes are then written as a segment)."""
        assert read.staged is not None
        try:
            relative, final, _ = self.new_segment_path(
                read.source, fmt=read.fmt, label=read.label, at=at
            )
            read.staged.link(final)
        except Unsupported:
            self._staging = False
            return None
        except OSError as error:
            raise self._not_written(error) from error
        return relative

    def _marked(self, relative: str) -> str | None:
        """The segment an index marker (its path from the root) names, if it is there. A
        marker still pending (a power cut after its segment appeared, before the marker's
        rename was on disk: :meth:`_indexing`) is put in place when its segment is there."""
        path = self.root / relative
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        try:
            name = _pending(path).read_text().strip()
        except FileNotFoundError:
            return self._packed_marker(path)
        if not name or not (self.root / name).is_file():
            return None  # its segment never appeared: those bytes are still to land
        try:
            _publish(_pending(path), path)
        except FileNotFoundError:  # its own ingest, or another look-up, put it in place
            pass
        return name

    def pack_markers(self, now: datetime) -> int:
        """Move the index markers placed before ``now`` - :data:`PACK_MARKERS_AFTER` into
        the index's SQLite file (``_index/blake3/packed.db``, a row each) and delete their
        files: how many. A marker file takes a block and an inode of the disk for good (a
        million ingested files: ≈ 4 GB), a row ≈ 100 bytes; a look-up that finds no file
        finds the row (:meth:`_marked`). The rows are committed before a file goes."""
        folder = self.root / _INDEX / _CURRENT
        cutoff = (now - PACK_MARKERS_AFTER).timestamp()
        found: list[tuple[Path, bytes, str]] = []
        for path in _marker_files(folder):
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
                found.append((path, bytes.fromhex(path.name), path.read_text().strip()))
            except (OSError, ValueError):  # gone meanwhile, or not a marker: left as it is
                continue
        if not found:
            return 0
        with contextlib.closing(_packed_index(folder, create=True)) as db, db:
            db.executemany(
                "INSERT OR REPLACE INTO markers VALUES (?, ?)", [(d, n) for _, d, n in found]
            )
        for path, _, _ in found:
            path.unlink(missing_ok=True)
        return len(found)

    def _packed_marker(self, path: Path) -> str | None:
        """The segment the marker at ``path`` names, if :meth:`pack_markers` packed it."""
        folder = self.root / _INDEX / _CURRENT
        if path.parent.parent != folder or not (folder / _PACKED_INDEX).is_file():
            return None
        try:
            digest = bytes.fromhex(path.name)
        except ValueError:
            return None
        db = getattr(self._packed, "db", None)
        if db is None:  # one connection a thread: opened for each look-up, 0.2 ms a file
            db = self._packed.db = _packed_index(folder)
        row = db.execute("SELECT segment FROM markers WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else str(row[0])

    def _has_legacy_index(self) -> bool:
        """Whether ``_index/`` holds markers of the SHA-256 index (a lake ingested into by an
        earlier version): looked at once; markers are never written there again."""
        if self._legacy_index is None:
            try:
                names = os.listdir(self.root / _INDEX)
            except (FileNotFoundError, NotADirectoryError):
                names = []
            self._legacy_index = any(name != _CURRENT for name in names)
        return self._legacy_index

    # ------------------------------------------------------------------ reading
    def segments(
        self,
        sources: str | Iterable[str] = SOURCES,
        since: date | None = None,
        hour: datetime | None = None,
        skip: Container[str] = frozenset(),
        before: date | None = None,
    ) -> list[Segment]:
        """Every sealed segment of the given source(s), in arrival order.

        ``since`` skips landing-day folders before that day: new segments always land
        in the current day's folder, so a follower need not list all of history.
        ``before`` lists only the landing-day folders before that day (retention's: what
        it may delete, not the months it keeps).
        ``hour`` lists only the segments that landed in that UTC hour (one folder).
        ``skip``: names left out before their size is asked (a follower's committed
        segments: a day of micro-batches lands tens of thousands, which each pass would
        otherwise ``stat`` again). A ``set`` passed again as the same object must only
        have grown since (a follower's committed names do): an unchanged folder's
        segments are then checked against it only if they were not in it last time.
        """
        found: list[Segment] = []
        for source in _sources(sources):
            if hour is not None:
                found.extend(self._walk(source, self.root / hour_prefix(source, hour), skip))
                continue
            base = self.root / source
            if not base.is_dir():
                continue
            if since is not None:
                self._let_go_before(source, since)
            for entry in os.scandir(base):
                day = _day(entry.name)
                if since is not None and day is not None and day < since:
                    continue
                if before is not None and (day is None or day >= before):
                    continue
                if entry.is_dir():
                    found.extend(self._walk(source, Path(entry.path), skip, keep=since is not None))
                elif not entry.name.startswith(".") and f"{source}/{entry.name}" not in skip:
                    found.append(self._segment(source, Path(entry.path)))
        return sorted(found, key=lambda s: (s.name.rsplit("/", 1)[-1], s.name))

    def lowest_name(self, source: str) -> str | None:
        """Where ``source``'s segment names start now: ``<source>/<oldest landing day>/``
        (retention deleted the older days' segments), ``<source>/`` when its folder holds
        anything but day folders, None when it holds nothing. One directory read."""
        return _lowest_name(source, self._source_entries(source))

    def held_ranges(self, source: str) -> list[tuple[str, str]]:
        """Half-open ranges of segment names covering every segment of ``source`` this zone
        can hold now: a range a run of consecutive landing days (the last one open-ended),
        or the whole source when its folder holds anything but day folders. A day copied
        back from the archive months before the others is its own range: what lies between
        is nobody's (the ledger's folded days there are not read). One directory read."""
        return _held_ranges(source, self._source_entries(source))

    def _source_entries(self, source: str) -> list[tuple[str, bool]]:
        """(name, is a folder) of each entry of ``source``'s folder."""
        try:
            return [(e.name, e.is_dir()) for e in os.scandir(self.root / source)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def listing(self, source: str, hour: datetime) -> dict[str, int | None]:
        """The sealed segments that landed in ``hour``: name → size where the listing
        carries it (object storage), None where each would cost a ``stat`` (a folder:
        ask :meth:`sizes` for the ones that matter). One directory read, no ``stat``:
        what the monitor re-reads of an hour that is still filling."""
        found: dict[str, int | None] = {}
        folders = [hour_prefix(source, hour)]
        while folders:
            relative = folders.pop()
            try:
                entries = list(os.scandir(self.root / relative))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.is_dir():
                    folders.append(f"{relative}{entry.name}/")
                elif not entry.name.startswith("."):  # dot-names are still being written
                    found[relative + entry.name] = None
        return found

    def listings(
        self, source: str, hours: Iterable[datetime]
    ) -> Iterator[tuple[datetime, dict[str, int | None]]]:
        """(hour, :meth:`listing` of it) for each of ``hours``, in order. A folder reads
        each hour's own folder (one directory read each, as :meth:`listing`); object
        storage may read a whole day's prefix at once, which costs fewer requests."""
        for hour in sorted(set(hours)):
            yield hour, self.listing(source, hour)

    def sizes(self, names: Iterable[str]) -> dict[str, int]:
        """The current size of each named segment that still exists."""
        found = {}
        for name in names:
            try:
                found[name] = os.stat(self.root / name).st_size
            except FileNotFoundError:
                continue
        return found

    def _walk(
        self, source: str, base: Path, skip: Container[str] = frozenset(), keep: bool = False
    ) -> list[Segment]:
        """Sealed segments under ``base`` (none when it does not exist), but those named
        in ``skip`` (their size is not asked). ``keep``: a follower's pass, whose folder
        listings are kept for the next one."""
        found: list[Segment] = []
        folders = [base.relative_to(self.root).as_posix()]
        while folders:
            folder = folders.pop()
            if keep:
                listing = self._listing(folder)
            else:
                try:
                    listing = self._read_listing(folder, 0)
                except (FileNotFoundError, NotADirectoryError):
                    continue
            if listing is None:
                continue
            folders.extend(listing.folders)
            unskipped = (
                self._unskipped(listing, skip)
                if keep
                else [name for name in listing.files if name not in skip]
            )
            for name in unskipped:
                try:
                    size = (self.root / name).stat().st_size
                except FileNotFoundError:  # removed since it was listed (retention)
                    continue
                found.append(Segment(source, name, size))
        return found

    def _let_go_before(self, source: str, since: date) -> None:
        """Drop the kept listings of ``source``'s landing days before ``since``."""
        prefix = f"{source}/"
        for kept in (self._listings, self._left):
            for folder in [f for f in kept if f.startswith(prefix)]:
                day = _day(folder.split("/")[1]) if folder.count("/") else None
                if day is not None and day < since:
                    del kept[folder]

    def _unskipped(self, listing: _Listing, skip: Container[str]) -> Iterable[str]:
        """The segments of ``listing`` not in ``skip``. For a set, what was left last time
        is kept with the listing: while the folder is unchanged and the same set comes
        back (grown: a follower's committed names), only those are looked up again — a
        pass over a day's settled folders costs nothing per segment."""
        if not isinstance(skip, (set, frozenset)):
            return [name for name in listing.files if name not in skip]
        last = self._left.get(listing.folder)
        if last is not None and last.listing is listing and last.skip() is skip:
            left = last.names - skip
        else:
            left = listing.files - skip  # in C
        self._left[listing.folder] = _Left(listing, weakref.ref(skip), left)
        return left

    def _listing(self, folder: str) -> _Listing | None:
        """The entries of ``folder`` (relative to the root); None if it is not there.

        A settled folder whose mtime has not moved is not read at all (one ``stat``). A
        changed one is read as names only (``listdir``, no per-entry Python) and compared
        with its last listing, so only the names that came are looked at: a pass costs
        about the same however many segments the current hour's folder already holds."""
        path = self.root / folder
        try:
            modified = os.stat(path).st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            self._listings.pop(folder, None)
            return None
        kept = self._listings.get(folder)
        if kept is not None and kept.settled and kept.modified_ns == modified:
            return kept
        try:
            if kept is None:
                listing = self._read_listing(folder, modified)
            else:
                listing = self._changed_listing(folder, modified, kept)
        except (FileNotFoundError, NotADirectoryError):
            self._listings.pop(folder, None)
            return None
        self._listings[folder] = listing
        return listing

    def _read_listing(self, folder: str, modified: int) -> _Listing:
        """``folder`` read whole (its entries' kinds come with them)."""
        names, files, folders = [], [], []
        with os.scandir(self.root / folder) as entries:
            for entry in entries:
                names.append(entry.name)
                if entry.is_dir():
                    folders.append(f"{folder}/{entry.name}")
                elif not entry.name.startswith("."):  # dot-names are still being written
                    files.append(f"{folder}/{entry.name}")
        return _Listing(
            folder,
            modified,
            _settled(modified),
            frozenset(names),
            frozenset(files),
            frozenset(folders),
        )

    def _changed_listing(self, folder: str, modified: int, kept: _Listing) -> _Listing:
        """``folder``'s names read (no per-entry Python) and compared with ``kept``: only
        the names that came are looked at."""
        names = frozenset(os.listdir(self.root / folder))
        files, folders = kept.files, kept.folders
        if went := kept.names - names:  # retention, erasure
            gone = {f"{folder}/{name}" for name in went}
            files, folders = files - gone, folders - gone
        came_files: list[str] = []
        came_folders: list[str] = []
        for name in names - kept.names:
            if name.startswith("."):  # still being written
                continue
            try:
                is_folder = stat.S_ISDIR(os.stat(self.root / folder / name).st_mode)
            except FileNotFoundError:  # gone since the listing
                continue
            (came_folders if is_folder else came_files).append(f"{folder}/{name}")
        return _Listing(
            folder,
            modified,
            _settled(modified),
            names,
            files.union(came_files) if came_files else files,
            folders.union(came_folders) if came_folders else folders,
        )

    def _segment(self, source: str, path: Path) -> Segment:
        return Segment(source, path.relative_to(self.root).as_posix(), path.stat().st_size)

    def read(self, segment: Segment) -> bytes:
        return (self.root / segment.name).read_bytes()

    def location(self, segment: Segment) -> str:
        """Where a segment is, as ``util.storage`` resolves it (to copy it as a stream)."""
        return str(self.root / segment.name)

    def read_mapped(self, segment: Segment) -> MappedFile | bytes:
        """A segment's bytes mapped read-only (:mod:`advertisex.util.mapped`): not copied
        into this process, and a decoder worker maps the same pages instead of receiving
        them through a pipe (a 146 MB segment was held by both, and copied twice)."""
        return map_file(self.root / segment.name)

    def head(self, segment: Segment, size: int) -> bytes:
        """The first ``size`` bytes of a segment (to sniff its compression)."""
        with open(self.root / segment.name, "rb") as handle:
            return handle.read(size)

    def remove_all(self, segments: Iterable[Segment]) -> None:
        """Delete processed segments (retention): :meth:`remove` each."""
        for segment in segments:
            self.remove(segment)

    def remove(self, segment: Segment) -> None:
        """Delete a processed segment (retention); emptied hour and day folders go too."""
        path = self.root / segment.name
        path.unlink(missing_ok=True)
        for folder in (path.parent, path.parent.parent):
            try:
                folder.rmdir()
            except OSError:  # not empty
                break

    def rewrite(self, segment: Segment, data: bytes) -> Segment:
        """Replace a segment's bytes in place (erasure of a user): written aside, fsync'd,
        renamed over the old file. The new content is indexed by its hash too, so neither
        the original file nor the rewritten one is ingested again."""
        self.rewrite_identified(segment, data)
        return Segment(segment.source, segment.name, len(data))

    def rewrite_identified(self, segment: Segment, data: bytes) -> Identity | None:
        """:meth:`rewrite`, and the identity of the file that holds ``data`` (its inode's,
        as renamed: ``landing.summaries``); None where files have none."""
        written = replace_local(self.root / segment.name, data)  # a failed write: no copy
        self._indexed_as(segment, data)
        return _identity(written)

    def _indexed_as(self, segment: Segment, data: bytes) -> None:
        if not segment.name.startswith(UNREADABLE):
            self._index(content_hash(data), segment.name)

    def summaries(self, version: int) -> WordSummaries | None:
        """The words kept of this zone's files for erasures (:mod:`landing.summaries`),
        as of the words' ``version``; None where a file has no identity to keep them by."""
        return WordSummaries(self.root / _INDEX / _CURRENT / WORDS_DB, version)

    def identity(self, segment: Segment) -> Identity | None:
        """The identity of a segment's file now (``landing.summaries``); None: gone."""
        return identity_of(self.root / segment.name)

    def unreadable(self) -> list[Segment]:
        """Files moved aside as unreadable, and their reason notes, named from the root
        (``_unreadable/<source>/…``) so :meth:`read` and :meth:`rewrite` take them."""
        base = self.root / UNREADABLE
        if not base.is_dir():
            return []
        return [
            Segment(
                landing_source(p.relative_to(self.root).as_posix()),
                p.relative_to(self.root).as_posix(),
                p.stat().st_size,
            )
            for p in sorted(base.rglob("*"))
            if p.is_file()
        ]


_INGEST_THREADS = 4

# Ingested files are indexed by the BLAKE3 hash of their bytes: as hard to forge as SHA-256
# (a crafted file cannot pass for one that landed, and be skipped), four times as fast on
# one core — the 2 M-event benchmark's 538 MB hashed in 0.10 s of CPU against 0.41 s, a
# third of ingest's CPU. Markers of the earlier SHA-256 index stay where they were written
# (``_index/<2 hex>/<hash>``) and are still looked up while a lake holds any.
_INDEX = "_index"
# The current index's folder under _INDEX: a name that is no two hex digits, so no folder
# of the SHA-256 index can be taken for it.
_CURRENT = "blake3"


def content_hash(data: FileBytes) -> str:
    """The content hash that indexes an ingested file, hex (BLAKE3, 256 bits)."""
    return blake3(data).hexdigest()


def marker(digest: str) -> str:
    """Where the index marker of a :func:`content_hash` lies, from the landing root."""
    return f"{_INDEX}/{_CURRENT}/{digest[:2]}/{digest}"


def legacy_marker(sha256: str) -> str:
    """Where an earlier version marked the file with this SHA-256 (hex)."""
    return f"{_INDEX}/{sha256[:2]}/{sha256}"


_NOT_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")  # what bytes.strip() keeps


class ReadBuffer:
    """One thread's memory for the files it ingests, reused from file to file.

    Reading each file into new memory cost a page fault for every 4 KiB of it: a block of
    several MiB is mapped afresh and given back when freed (``util.allocator``), so the
    kernel hands over and zeroes every page again. For the demo's 72 files (308 MB): 137 k
    faults, now 48-53 k, and 0.2 s less of system time beside the generator. A file larger
    than ``KEPT_BYTES`` is read into new memory, so a thread never holds more; the buffer
    goes with its thread. Not mapped (``util.mapped``), as the processor reads segments: a
    producer may still change a file being ingested, and the bytes hashed must be the
    bytes landed — a copy is a snapshot, a mapping is not. Used where the kernel cannot
    copy files in (:mod:`advertisex.landing.staged`: there the copy is mapped, not the file).
    """

    KEPT_BYTES = 64 << 20

    def __init__(self) -> None:
        self._memory = bytearray()

    def read(self, path: Path | int) -> bytes | memoryview:
        """``path``'s bytes (or an open descriptor's, from its start): a view of this
        buffer, valid until the next :meth:`read`."""
        with open(path, "rb", buffering=0, closefd=not isinstance(path, int)) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > self.KEPT_BYTES:
                return handle.readall()
            if len(self._memory) < size + 1:
                self._memory = bytearray(size + 1)  # one byte more: a file grown since is seen
            view = memoryview(self._memory)
            filled = 0
            while (got := handle.readinto(view[filled:])) and filled + got <= size:
                filled += got
            if got:  # grew while being read: the rest too, in new memory
                return bytes(view[: filled + got]) + handle.readall()
            return view[:filled]


class _Stamps:
    """Landing times, each after the one handed out before (names are µs-precise)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: datetime | None = None

    def next(self) -> datetime:
        with self._lock:
            at = utcnow()
            if self._last is not None and at <= self._last:
                at = self._last + timedelta(microseconds=1)
            self._last = at
            return at


_STAMPS = _Stamps()


class Ingest:
    """Files handed in one at a time (:meth:`add`, from any thread), landed several at
    once: reading, hashing and fsync'ing wait on the disk, not on this process's one core
    of Python, and a caller may go on producing files meanwhile.

    It is as if they were ingested one by one in the order added: each one's landing time
    is taken when it is added (name order stays arrival order), and whether a file's bytes
    landed before is decided in that order too, each file after the one before it (a
    lookup; the writes still overlap), so of the same bytes added twice the first lands.
    """

    def __init__(
        self, zone: LandingZone, source: str | None = None, walked: dict[Path, Path] | None = None
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.zone, self.source = zone, source
        self.walked = walked or {}  # a file found by a folder's walk → that folder
        self._pool = ThreadPoolExecutor(max_workers=_INGEST_THREADS, thread_name_prefix="ingest")
        self._landing: list[Future[IngestResult]] = []
        self._lock = threading.Lock()
        self._decided = threading.Event()  # the last added file's verdict is in
        self._decided.set()
        self._claimed: dict[str, str] = {}  # content hash → segment landing it in this run
        self._buffers = threading.local()  # each ingest thread's ReadBuffer, gone with it

    def add(self, path: Path) -> None:
        with self._lock:
            at = _STAMPS.next()
            before, self._decided = self._decided, threading.Event()
            task = self._pool.submit(self._ingest, path, at, before, self._decided)
            self._landing.append(task)

    def _ingest(
        self, path: Path, at: datetime, before: threading.Event, decided: threading.Event
    ) -> IngestResult:
        read: ReadFile | IngestResult | None = None
        try:
            try:
                buffer = getattr(self._buffers, "buffer", None)
                if buffer is None:
                    buffer = self._buffers.buffer = ReadBuffer()
                read = self.zone.read_for_ingest(path, self.source, buffer, self.walked.get(path))
                before.wait()  # the files added before this one are decided (tasks start in order)
                if isinstance(read, IngestResult):
                    return read
                claimed = self._claimed.get(read.digest)
                if claimed is not None:
                    return IngestResult(
                        str(path), "already", read.source, claimed, bytes=len(read.data)
                    )
                found = self.zone.already(read)
                if found is not None:
                    return found
                self._claimed[read.digest] = read.name_at(at)
            finally:
                decided.set()
            return self.zone.land(read, at)
        finally:
            if isinstance(read, ReadFile):
                read.release()

    def results(self, done: Callable[[int], None] | None = None) -> list[IngestResult]:
        """Every added file's result, in the order added (waiting for the last to land);
        ``done(n)`` is told after each of the first ``n``."""
        with self._lock:
            landing = list(self._landing)
        results = []
        try:
            for future in landing:
                results.append(future.result())
                if done:
                    done(len(results))
        finally:
            self._pool.shutdown(cancel_futures=True)
            self.zone.sync_markers()  # what landed is marked on disk before it is told
        return results


def segment_name(
    source: str, *, fmt: str | None = None, label: str = "", at: datetime | None = None
) -> str:
    """``<source>/<YYYY-MM-DD>/<HH>/<stamp>-<label><ext>``: a new segment's name."""
    if source not in SOURCES:
        raise UserInputError(f"unknown source {source!r}", hint=f"use one of {', '.join(SOURCES)}")
    at = at or utcnow()
    stamp = at.strftime("%Y%m%dT%H%M%S%fZ")
    label = label or secrets.token_hex(6)
    extension = FORMATS[fmt] if fmt else _EXTENSIONS[source]
    return f"{source}/{at:%Y-%m-%d}/{at:%H}/{stamp}-{label}{extension}"


class ObjectStoreLandingZone(LandingZone):
    """The same layout on object storage (S3, GCS, Azure) through a PyArrow filesystem.

    An object appears only once its upload completes, so a listed segment is sealed
    without the local temporary-name-and-rename dance. Collectors keep writing to a
    local folder (they fsync before acknowledging); batch ingest and the processor
    work here directly.
    """

    def __init__(self, url: str, filesystem: Any, base: str, words: Path | None = None) -> None:
        super().__init__(Path(base))
        self.url, self.fs, self.base = url, filesystem, base.rstrip("/")
        self.words = words  # the database of its files' words (landing.summaries.kept_at)
        self._staging = False  # no file system of this machine's to copy into: read and upload

    def new_segment_path(self, source: str, **_: Any) -> tuple[str, Path, Path]:
        raise UserInputError(
            f"collectors write to a local landing folder, not to {self.url}",
            hint="run collectors on a local or shared folder (scale.landing unset) and copy "
            "sealed segments to the bucket: they are immutable and uniquely named "
            "(docs/deployment.md)",
        )

    def write_segment(
        self,
        source: str,
        data: FileBytes,
        *,
        fmt: str | None = None,
        label: str = "",
        at: datetime | None = None,
        fsync: bool = True,
    ) -> Segment:
        relative = segment_name(source, fmt=fmt, label=label, at=at)
        with self.fs.open_output_stream(f"{self.base}/{relative}") as out:
            out.write(data)
        return Segment(source, relative, len(data))

    def _marked(self, relative: str) -> str | None:
        try:
            with self.fs.open_input_stream(f"{self.base}/{relative}") as f:
                return bytes(f.readall()).decode().strip()
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def _indexing(self, digest: str, name: str) -> Iterator[None]:
        # An object appears whole once uploaded: the marker follows the segment's upload.
        yield
        self._index(digest, name)

    def sync_markers(self) -> None:
        pass  # an object is durable once uploaded

    def pack_markers(self, now: datetime) -> int:
        return 0  # an object takes no block or inode of this machine's disk

    def _index(self, digest: str, name: str) -> None:
        with self.fs.open_output_stream(f"{self.base}/{marker(digest)}") as out:
            out.write((name + "\n").encode())

    def _has_legacy_index(self) -> bool:
        if self._legacy_index is None:
            import pyarrow.fs as pafs

            selector = pafs.FileSelector(f"{self.base}/{_INDEX}", allow_not_found=True)
            self._legacy_index = any(
                info.base_name != _CURRENT for info in self.fs.get_file_info(selector)
            )
        return self._legacy_index

    def segments(
        self,
        sources: str | Iterable[str] = SOURCES,
        since: date | None = None,
        hour: datetime | None = None,
        skip: Container[str] = frozenset(),
        before: date | None = None,
    ) -> list[Segment]:
        found: list[Segment] = []
        for source in _sources(sources):
            folder = hour_prefix(source, hour).rstrip("/") if hour is not None else source
            for relative, size in self._objects(folder):
                day = landing_day(relative)
                if since is not None and day is not None and day < since:
                    continue
                if before is not None and (day is None or day >= before):
                    continue
                if relative not in skip:  # the listing carries sizes: nothing to save
                    found.append(Segment(source, relative, size))
        return sorted(found, key=lambda s: (s.name.rsplit("/", 1)[-1], s.name))

    def _objects(self, folder: str) -> Iterator[tuple[str, int]]:
        """(name, size) of every sealed object under ``folder``: one LIST request per
        thousand objects (PyArrow lists a recursive selector without a delimiter and
        pages through it)."""
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(f"{self.base}/{folder}", recursive=True, allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and not info.base_name.startswith("."):
                yield info.path[len(self.base) + 1 :], info.size

    def _source_entries(self, source: str) -> list[tuple[str, bool]]:
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(f"{self.base}/{source}", allow_not_found=True)
        return [
            (info.base_name, info.type == pafs.FileType.Directory)
            for info in self.fs.get_file_info(selector)
        ]

    def listing(self, source: str, hour: datetime) -> dict[str, int | None]:
        return {s.name: s.size for s in self.segments(source, hour=hour)}  # sizes come free

    def listings(
        self, source: str, hours: Iterable[datetime]
    ) -> Iterator[tuple[datetime, dict[str, int | None]]]:
        """Each request costs time and money, and lists up to a thousand objects: an hour
        of a few segments costs the same request as a day of them. So a day of which at
        least half the hours that may hold segments by now are asked for (and more than
        one) is listed in one go, its prefix paged through, and cut into hours; other
        hours are listed on their own. Under steady traffic that reads at most about
        twice the objects asked for, and the monitor's first look at eight days costs 27
        to 57 requests (by the hour of the day: a window's first day may be short), not
        one per source and hour (579); a look while the processor is days behind, one per
        source and day."""
        now = utcnow()
        ordered = sorted(set(hours))
        for day, grouped in itertools.groupby(ordered, key=lambda hour: hour.date()):
            asked = list(grouped)
            open_hours = 24 if day < now.date() else now.hour + 1
            if len(asked) < 2 or 2 * len(asked) < open_hours:
                for hour in asked:
                    yield hour, self.listing(source, hour)
                continue
            found: dict[str, dict[str, int | None]] = {hour_prefix(source, h): {} for h in asked}
            cut = len(hour_prefix(source, asked[0]))  # <source>/<YYYY-MM-DD>/<HH>/
            for name, size in self._objects(f"{source}/{day.isoformat()}"):
                listed = found.get(name[:cut])
                if listed is not None:
                    listed[name] = size
            for hour in asked:
                yield hour, found[hour_prefix(source, hour)]

    def sizes(self, names: Iterable[str]) -> dict[str, int]:
        import pyarrow.fs as pafs

        names = list(names)
        infos = self.fs.get_file_info([f"{self.base}/{n}" for n in names]) if names else []
        return {
            name: info.size
            for name, info in zip(names, infos, strict=True)
            if info.type == pafs.FileType.File
        }

    def read(self, segment: Segment) -> bytes:
        # As it is, whatever its name's suffix (PyArrow inflates a ".gz" by default).
        with self.fs.open_input_stream(f"{self.base}/{segment.name}", compression=None) as f:
            return bytes(f.readall())

    def location(self, segment: Segment) -> str:
        return f"{self.url.rstrip('/')}/{segment.name}"

    def read_mapped(self, segment: Segment) -> MappedFile | bytes:
        return self.read(segment)  # an object in a store is not a file to map

    def head(self, segment: Segment, size: int) -> bytes:
        with self.fs.open_input_file(f"{self.base}/{segment.name}") as f:
            return bytes(f.read(size))

    def remove(self, segment: Segment) -> None:
        self.remove_all([segment])

    def remove_all(self, segments: Iterable[Segment]) -> None:
        """Delete processed segments, then the hour and day folders they emptied, as a
        folder's :meth:`LandingZone.remove` does. PyArrow's S3 filesystem puts the parent
        "folder" back as an empty marker object (``…/07/``) after every delete, so an
        emptied landing day stayed listed for ever: :meth:`lowest_name` and
        :meth:`held_ranges` counted it held, the ledger never folded the days after it and
        a processor's start read their marks. Each folder is looked at once, after all of
        its segments went."""
        hours: set[str] = set()
        for segment in segments:
            with contextlib.suppress(FileNotFoundError):
                self.fs.delete_file(f"{self.base}/{segment.name}")
            hours.add(segment.name.rsplit("/", 1)[0])
        days = {hour.rsplit("/", 1)[0] for hour in hours}
        for folder in [*sorted(hours), *sorted(days)]:
            self._drop_if_empty(folder)

    def _drop_if_empty(self, folder: str) -> None:
        """Delete ``folder`` (its marker object) when nothing is left under it. Retention's
        expired hours and days are all that come here: nothing lands in them any more."""
        import pyarrow.fs as pafs

        path = f"{self.base}/{folder}"
        if self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(path)  # (its parent's marker put back: a day is looked at next)

    def summaries(self, version: int) -> WordSummaries | None:
        # On this machine: SQLite is no object. Every file is read where there is none.
        return None if self.words is None else WordSummaries(self.words, version)

    def identity(self, segment: Segment) -> Identity | None:
        """An object's size, ETag, version id and modification time (its store's HEAD)."""
        return object_identity(self.fs, f"{self.base}/{segment.name}")

    def rewrite_identified(self, segment: Segment, data: bytes) -> Identity | None:
        # None: the object written is read again next time (the HEAD after a PUT could be
        # another writer's object, the words ours).
        self.rewrite(segment, data)
        return None

    def rewrite(self, segment: Segment, data: bytes) -> Segment:
        with self.fs.open_output_stream(f"{self.base}/{segment.name}", compression=None) as out:
            out.write(data)  # an object is replaced whole, at once
        self._indexed_as(segment, data)
        return Segment(segment.source, segment.name, len(data))

    def unreadable(self) -> list[Segment]:
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(
            f"{self.base}/{UNREADABLE}", recursive=True, allow_not_found=True
        )
        found = []
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.File:
                name = info.path[len(self.base) + 1 :]
                found.append(Segment(landing_source(name), name, info.size))
        return sorted(found, key=lambda s: s.name)


def open_landing(settings: Settings) -> LandingZone:
    """The configured landing zone: ``<data_dir>/landing``, or ``scale.landing`` on object
    storage (``s3://bucket/landing``)."""
    location = settings.scale.landing
    if location is None:
        return LandingZone(settings.landing_dir)
    from advertisex.util.storage import is_remote, resolve

    if not is_remote(location):
        raise UserInputError(
            f"scale.landing must be an object-store URL, not {location!r}",
            hint="a local landing zone is <data_dir>/landing: set data_dir instead",
        )
    filesystem, base = resolve(location, settings.scale)
    words = kept_at(settings.words_dir, location)
    return ObjectStoreLandingZone(location, filesystem, base, words)


def expand_paths(
    paths: Iterable[str | Path],
    passed_over: list[IngestResult] | None = None,
    walked: dict[Path, Path] | None = None,
) -> list[Path]:
    """Files named directly, every file under a folder (recursively), or a glob's matches.

    What a folder's walk or a glob finds but will not read is added to ``passed_over`` as a
    skipped result (:func:`_passed_over`); a file named directly is read whatever it is.
    ``walked`` is told the folder (resolved) each file a walk or a glob found is under:
    the file may be replaced before it is read, so the reader checks it again on what it
    opened (:func:`open_within`)."""
    files: list[Path] = []
    for raw in paths:
        # Path("") is the current folder: an unset shell variable's "$DIR" ingested it.
        if isinstance(raw, str) and not raw.strip():
            raise UserInputError(
                "an empty path was given",
                hint="name the files or folders to ingest (an empty variable in a script?)",
            )
        files.extend(
            _expanded(
                str(raw),
                passed_over if passed_over is not None else [],
                walked if walked is not None else {},
            )
        )
    return files


def _expanded(raw: str, passed_over: list[IngestResult], walked: dict[Path, Path]) -> list[Path]:
    """:func:`expand_paths` of one path; a name the system refuses to look up (too long, a
    loop of links, a folder it may not enter) is the user's to fix, as a missing one is."""
    import glob

    files: list[Path] = []
    path = Path(raw)
    before = len(passed_over)
    try:
        if path.is_dir():
            found = [p for p in sorted(path.rglob("*")) if not p.name.startswith(".")]
            files.extend(_readable(found, path, raw, passed_over, walked))
            if not files and len(passed_over) == before:
                raise UserInputError(
                    f"the folder {raw} holds no file to ingest",
                    hint="check the path (hidden files, named .*, are not ingested)",
                )
        elif path.is_file() or _is_pipe(path):  # named: a pipe is read as it comes (/dev/stdin)
            files.append(path)
        else:
            matches = [Path(m) for m in sorted(glob.glob(raw, recursive=True))]
            files.extend(_readable(matches, _glob_base(raw), raw, passed_over, walked))
            if not files and len(passed_over) == before:
                raise UserInputError(
                    f"no such file, folder or matching glob: {raw}",
                    hint="check the path; quote globs so the shell passes them through",
                )
    except OSError as error:
        shown = raw if len(raw) <= 200 else f"{raw[:200]}… ({len(raw):,} characters)"
        raise UserInputError(
            f"cannot look up {shown}: {error.strerror or error}",
            hint="check the path",
        ) from None
    return files


def _readable(
    found: list[Path],
    base: Path,
    raw: str,
    passed_over: list[IngestResult],
    walked: dict[Path, Path],
) -> list[Path]:
    """The regular files among ``found`` (a walk of, or a glob under, ``base``); the rest but
    folders go to ``passed_over`` with why."""
    root = base.resolve()
    files = []
    for path in found:
        why = _passed_over(path, root, raw)
        if why is not None:
            passed_over.append(IngestResult(str(path), "skipped", detail=why))
        elif path.is_file():
            files.append(path)
            walked[path] = root
    return files


def open_within(path: Path, root: Path) -> int | str:
    """``path`` opened for reading if what it names now is a regular file inside ``root``
    (a resolved folder), else why it is not read.

    A walk's checks (:func:`_passed_over`) look at a name, and reading it opens the name
    again: a partner who swaps the file (or a folder above it) for a link to
    ``/etc/passwd`` in between had that read. So the check is made again on what is
    opened: the name is opened as a path only (``O_PATH``: no device is opened, no pipe
    waited for), its real place and kind read from that descriptor, and only then is it
    opened for reading, through the descriptor itself. Without ``O_PATH`` and
    ``/proc/self/fd`` (not Linux), the file is opened ``O_NOFOLLOW`` and must be regular.
    """
    moved = "replaced since its folder was read"
    if hasattr(os, "O_PATH") and os.path.isdir("/proc/self/fd"):
        try:
            handle = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError as e:
            return f"cannot read: {e.strerror}"
        try:
            real = Path(os.readlink(f"/proc/self/fd/{handle}"))
            if not real.is_relative_to(root):
                return f"{moved} by a link out of the folder: not read"
            if not stat.S_ISREG(os.fstat(handle).st_mode):
                return f"{moved}, and not a regular file now: not read"
            return os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            return f"cannot read: {e.strerror}"
        finally:
            os.close(handle)
    try:
        opened = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return (
                "a symbolic link: not followed here (where it leads cannot be checked as it "
                "is opened on this system); name its target to ingest it"
            )
        return f"cannot read: {e.strerror}"
    if not stat.S_ISREG(os.fstat(opened).st_mode):
        os.close(opened)
        return f"{moved}, and not a regular file now: not read"
    return opened


def _read_all(path: Path | int) -> bytes:
    """A file's bytes, by name or from an open descriptor's start (which stays open)."""
    if isinstance(path, Path):
        return path.read_bytes()
    with open(path, "rb", buffering=0, closefd=False) as handle:
        return handle.readall()


def _passed_over(path: Path, root: Path, raw: str) -> str | None:
    """Why a file that a walk of (or a glob under) ``root`` found is not read, or None.

    A symbolic link out of the folder is not followed: a partner's drop folder (SFTP lets
    one make links) holding ``x.csv -> /etc/passwd`` landed that file, its lines then shown
    as quarantined records to every reader of the lake. Nor is what is no regular file read:
    a pipe would wait for a writer that may never come."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):  # a missing target, or a loop of links
            return "a symbolic link to nothing readable: not followed"
        if not target.is_relative_to(root):
            return (
                f"a symbolic link out of {raw}: not followed (a file outside the folder); "
                "name the file itself to ingest it"
            )
    if path.is_dir() or path.is_file():
        return None
    if _is_pipe(path):
        return (
            "a pipe: not read in a folder (it waits for a writer); name it to read it as it comes"
        )
    return "not a regular file (a socket or a device): not read"


def _is_pipe(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(path.stat().st_mode)
    except OSError:
        return False


def _glob_base(pattern: str) -> Path:
    """The folder a glob searches: its leading parts without a wildcard."""
    import glob

    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path()


def hour_prefix(source: str, hour: datetime) -> str:
    """``<source>/<YYYY-MM-DD>/<HH>/``: where the segments landed in ``hour`` live."""
    return f"{source}/{hour:%Y-%m-%d}/{hour:%H}/"


def _sources(sources: str | Iterable[str]) -> Iterable[str]:
    return (sources,) if isinstance(sources, str) else sources


def _lowest_name(source: str, entries: list[tuple[str, bool]]) -> str | None:
    """:meth:`LandingZone.lowest_name` from the (name, is a folder) entries of ``source``'s
    folder; names starting with a dot are files still being written."""
    days = [day for name, folder in entries if folder and (day := _day(name)) is not None]
    if any(not name.startswith(".") and not (folder and _day(name)) for name, folder in entries):
        return f"{source}/"
    return f"{source}/{min(days).isoformat()}/" if days else None


def _held_ranges(source: str, entries: list[tuple[str, bool]]) -> list[tuple[str, str]]:
    """:meth:`LandingZone.held_ranges` from the entries of ``source``'s folder."""
    low = _lowest_name(source, entries)
    if low is None:
        return []
    if low == f"{source}/":
        return [(low, f"{source}0")]  # "0" sorts right after "/"
    days = sorted(day for name, folder in entries if folder and (day := _day(name)) is not None)
    ranges: list[tuple[str, str]] = []
    first = days[0]
    for before, day in itertools.pairwise(days):
        if day - before > timedelta(days=1):
            ranges.append((f"{source}/{first.isoformat()}/", f"{source}/{before.isoformat()}0"))
            first = day
    return [*ranges, (f"{source}/{first.isoformat()}/", f"{source}0")]


def _day(folder: str) -> date | None:
    try:
        return date.fromisoformat(folder)
    except ValueError:
        return None


def _settled(modified_ns: int) -> bool:
    """Whether a folder last modified at ``modified_ns`` (its mtime, taken before it was
    listed) is settled: any later change moves its mtime on, since the change cannot
    share the file system clock's tick with this one."""
    return time.time_ns() - modified_ns > SETTLED_AFTER_NS


def landing_source(name: str) -> str:
    """The source of a landing file named ``<source>/…`` or ``_unreadable/<source>/…``
    (impressions when the name does not say)."""
    parts = name.split("/")
    if parts[0] == UNREADABLE:
        parts = parts[1:]
    return parts[0] if len(parts) > 1 and parts[0] in SOURCES else "impressions"


def landing_day(segment: Segment | str) -> date | None:
    """The landing day of a segment, from its ``<source>/<YYYY-MM-DD>/<HH>/…`` name."""
    name = segment.name if isinstance(segment, Segment) else segment
    parts = name.split("/")
    return _day(parts[1]) if len(parts) > 1 else None


_STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{1,6})Z")


def segment_time(segment: Segment | str) -> datetime:
    """The landing time encoded at the start of a segment's file name (1970 when the
    name does not start with one)."""
    name = segment.name if isinstance(segment, Segment) else segment
    stamp = name.rsplit("/", 1)[-1].split("-", 1)[0]
    fixed = _STAMP.fullmatch(stamp)  # the names segment_name makes: 3× faster than strptime
    if fixed:
        year, month, day, hour, minute, second, fraction = fixed.groups()
        with contextlib.suppress(ValueError):
            return datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second),
                int(fraction.ljust(6, "0")), tzinfo=UTC,
            )  # fmt: skip
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return datetime(1970, 1, 1, tzinfo=UTC)


# segment_time's fast path, for Arrow: the stamp that starts a file name (after the last
# "/", up to the first "-" or the end), its seconds and its fraction apart.
_STAMP_IN_NAME = r"(?:^|/)(?P<seconds>\d{8}T\d{6})(?P<fraction>\d{1,6})Z(?:-[^/]*)?$"


def segment_times(names: Iterable[str] | pa.Array | pa.ChunkedArray) -> pa.TimestampArray:
    """:func:`segment_time` of many names at once, as ``timestamp[us, UTC]``: the names
    :func:`segment_name` makes are parsed in Arrow (tens of thousands in milliseconds),
    any other name by :func:`segment_time` itself.

    >>> segment_times(["clicks/2026-12-01/20/20261201T205958123456Z-a.csv"])[0].as_py().isoformat()
    '2026-12-01T20:59:58.123456+00:00'
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(names, pa.ChunkedArray):
        names = names.combine_chunks()
    array = names if isinstance(names, pa.Array) else pa.array(list(names), pa.string())
    if not len(array):
        return pa.array([], pa.timestamp("us", tz="UTC"))
    parts = pc.extract_regex(array, _STAMP_IN_NAME)
    seconds = pc.struct_field(parts, "seconds")
    parsed = pc.strptime(seconds, format="%Y%m%dT%H%M%S", unit="us", error_is_null=True)
    # Arrow rolls over what Python's datetime refuses (a 60th second, year 0): only stamps
    # that print back as they were read are taken; the others go the slow way.
    printed = pc.strftime(parsed.cast(pa.timestamp("s")), format="%Y%m%dT%H%M%S")
    exact = pc.and_(pc.equal(printed, seconds), pc.invert(pc.starts_with(seconds, "0000")))
    micros = pc.cast(pc.utf8_rpad(pc.struct_field(parts, "fraction"), 6, "0"), pa.int64())
    fast = pc.add(parsed, pc.cast(micros, pa.duration("us")))
    fast = pc.if_else(exact, fast, None).cast(pa.timestamp("us", tz="UTC"))
    missing = pc.indices_nonzero(pc.invert(pc.fill_null(exact, False))).to_pylist()
    if not missing:
        return fast  # type: ignore[no-any-return]
    slow = pa.array([segment_time(array[i].as_py()) for i in missing], fast.type)
    return pc.replace_with_mask(  # type: ignore[no-any-return]
        fast, pc.is_null(fast), slow
    )


def lineage_table(segments: list[Segment]) -> pa.Table:
    """segment index → source_file, ingest_time: the lookup the final select joins."""
    import pyarrow as pa

    return pa.table(
        {
            "segment": pa.array(range(len(segments)), pa.int32()),
            "source_file": pa.array([s.name for s in segments], pa.string()),
            "ingest_time": segment_times(s.name for s in segments),
        }
    )


# Index markers older than this are packed into the index's SQLite file by ``maintain``.
PACK_MARKERS_AFTER = timedelta(days=1)
_PACKED_INDEX = "packed.db"  # in _index/blake3/


def _marker_files(folder: Path) -> Iterator[Path]:
    """The index markers' files under ``folder`` (``<2 hex>/<hash>``; pending ones left out)."""
    try:
        prefixes = [e.path for e in os.scandir(folder) if e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return
    for prefix in prefixes:
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(prefix):
                if not entry.name.startswith(".") and entry.is_file():
                    yield Path(entry.path)


def _packed_index(folder: Path, create: bool = False) -> sqlite3.Connection:
    """The packed markers' database in ``folder`` (made when ``create``)."""
    db = sqlite3.connect(folder / _PACKED_INDEX)
    if create:
        db.execute(
            "CREATE TABLE IF NOT EXISTS markers "
            "(digest BLOB PRIMARY KEY, segment TEXT NOT NULL) WITHOUT ROWID"
        )
    return db


def _pending(marker_path: Path) -> Path:
    """Where an index marker is written before its segment lands (same folder, hidden)."""
    return marker_path.with_name(f".{marker_path.name}.tmp")


def _write_durably(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` and fsync the file and its folder."""
    path.write_text(text)
    fsync_path(path)
    fsync_path(path.parent)


def _publish(pending: Path, path: Path) -> None:
    """Rename a written marker into place, durably."""
    os.replace(pending, path)
    fsync_path(path.parent)
