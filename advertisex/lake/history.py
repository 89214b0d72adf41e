"""What a table's snapshots say happened, and which files they still need.

Readers that follow a table incrementally (the committed-key cache, the marts, the
monitor's file index) ask "which rows were appended since snapshot S?". Upkeep adds
snapshots that are not appends — a compaction rewrites files without changing rows, a
retention run drops old days, an erasure removes a user — and each reader decides which
of those it may step over (:data:`UPKEEP`, :func:`kind`).

Expiry and orphan removal ask the other question: which files does any snapshot still
reference (:func:`referenced`)?
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Snapshot summary property naming the upkeep operation that wrote a snapshot.
UPKEEP = "advertisex.upkeep"
COMPACTION, RETENTION, ERASURE, MANIFESTS = "compaction", "retention", "erasure", "manifests"


def kind(snapshot: Any) -> str:
    """``append``, an upkeep kind (``compaction``, ``retention``, ``erasure``), or the
    Iceberg operation of anything else (``overwrite``, ``delete``, ``replace``)."""
    summary = snapshot.summary
    if summary is None:
        return "unknown"
    marked = summary[UPKEEP]
    if marked:
        return str(marked)
    return str(summary.operation.value)


def appended_since(
    table: Any,
    since: int,
    until: int | None = None,
    step_over: Iterable[str] = (),
    stepped: Collection[int] = (),
) -> list[Any] | None:
    """Data files appended after snapshot ``since`` up to ``until`` (default: current).

    Snapshots of a kind in ``step_over``, or whose id is in ``stepped``, are stepped over
    (a reader that knows their rows need nothing from it, or knows the rows they took out:
    a replay's removal); any other non-append snapshot, or ``since`` no longer being an
    ancestor (expired, rolled back), returns None: the caller must start over. Files an
    append added and a later compaction replaced are still returned (they exist until
    the snapshots that referenced them expire; reading one that is gone raises
    ``FileNotFoundError``, which also means: start over).
    """
    from pyiceberg.manifest import ManifestContent, ManifestEntryStatus

    kinds = set(step_over)
    metadata = table.metadata
    head = metadata.snapshot_by_id(until) if until is not None else table.current_snapshot()
    appends: list[int] = []
    crossed = False
    snapshot = head
    while snapshot is not None and snapshot.snapshot_id != since:
        what = kind(snapshot)
        if what == "append":
            appends.append(snapshot.snapshot_id)
        elif what in kinds or snapshot.snapshot_id in stepped:
            crossed = True
        else:
            return None
        parent = snapshot.parent_snapshot_id
        snapshot = metadata.snapshot_by_id(parent) if parent is not None else None
    if snapshot is None:
        return None
    if not appends:
        return []
    if not crossed:
        own = _appended_here(table, appends)
        if own is not None:
            return own
    newer = set(appends)
    # Without an upkeep snapshot in between, the head still lists every appended file:
    # one manifest list read. Merged manifests keep a file's adding snapshot id, so
    # entries are picked by it (their status may have become EXISTING).
    sources = [head] if not crossed else [metadata.snapshot_by_id(s) for s in appends]
    files: dict[str, Any] = {}
    for source in sources:
        owners = newer if not crossed else {source.snapshot_id}
        for manifest in manifests_of(source, table.io):
            if manifest.content != ManifestContent.DATA or manifest.added_snapshot_id not in newer:
                continue
            for entry in manifest_entries(manifest, table.io):
                if entry.status != ManifestEntryStatus.DELETED and entry.snapshot_id in owners:
                    files[entry.data_file.file_path] = entry.data_file
    return list(files.values())


def first_append_after(table: Any, since: int | None) -> int | None:
    """When (ms since the epoch) the oldest append after snapshot ``since`` was committed,
    following the current snapshot's ancestry; None when none came after it. ``since``
    None (a reader that started on an empty table) counts every append; ``since`` no
    longer an ancestor (expired, rolled back) counts every append still in the history."""
    metadata = table.metadata
    snapshot = table.current_snapshot()
    oldest = None
    while snapshot is not None and snapshot.snapshot_id != since:
        if kind(snapshot) == "append":
            oldest = snapshot.timestamp_ms
        parent = snapshot.parent_snapshot_id
        snapshot = metadata.snapshot_by_id(parent) if parent is not None else None
    return oldest


# Data files appended by this process's own commits, by (table uuid, snapshot id): a
# reader that follows a table across the runner's commits (the committed-key cache, the
# marts) learns what each added without reading the manifest list and manifests back —
# about as costly as the commit that wrote them. Only the newest few are kept.
_appended: dict[tuple[str, int], tuple[Any, ...]] = {}
_APPENDED_KEPT = 256
_appended_lock = threading.Lock()


def remember_appended(table: Any, data_files: Iterable[Any]) -> None:
    """Note that ``table``'s current snapshot, an append this process just committed,
    added exactly ``data_files`` (pyiceberg ``DataFile``s)."""
    snapshot = table.current_snapshot()
    if snapshot is None or kind(snapshot) != "append":
        return
    with _appended_lock:
        _appended[(str(table.metadata.table_uuid), snapshot.snapshot_id)] = tuple(data_files)
        while len(_appended) > _APPENDED_KEPT:
            del _appended[next(iter(_appended))]


def all_appended_here(table: Any) -> list[Any] | None:
    """Every data file of ``table``'s current snapshot, when it and each snapshot before it
    is an append this process committed (:func:`remember_appended`): a new lake's tables
    after its first batch, read whole by the marts' first build without a plan (a manifest
    list and manifests read back). None otherwise, or for a table with no snapshot; the
    history is followed only while this process remembers it (at most its last
    :data:`_APPENDED_KEPT` appends), a long one never walked whole."""
    metadata = table.metadata
    uuid = str(metadata.table_uuid)
    snapshot = table.current_snapshot()
    by_id: dict[int, Any] | None = None
    appends: list[int] = []
    while snapshot is not None:
        with _appended_lock:
            known = (uuid, snapshot.snapshot_id) in _appended
        if not known or kind(snapshot) != "append":
            return None
        appends.append(snapshot.snapshot_id)
        parent = snapshot.parent_snapshot_id
        if parent is None:
            return _appended_here(table, appends)
        if by_id is None:
            by_id = {s.snapshot_id: s for s in metadata.snapshots}
        snapshot = by_id.get(parent)
    return None  # no snapshot, or an ancestor expired: files it added are not known here


def _appended_here(table: Any, appends: list[int]) -> list[Any] | None:
    """The files the ``appends`` snapshots added, when each is one this process
    committed (:func:`remember_appended`); None when any is not."""
    uuid = str(table.metadata.table_uuid)
    with _appended_lock:
        known = [_appended.get((uuid, snapshot_id)) for snapshot_id in reversed(appends)]
    if any(files is None for files in known):
        return None
    found = {f.file_path: f for files in known for f in files or ()}
    return list(found.values())


@dataclass
class Referenced:
    """Every file the table's metadata still points at, as full URLs."""

    data: dict[str, int] = field(default_factory=dict)  # data and delete files → size
    manifests: set[str] = field(default_factory=set)
    manifest_lists: set[str] = field(default_factory=set)
    metadata: set[str] = field(default_factory=set)  # metadata.json versions, statistics

    def all(self) -> set[str]:
        return set(self.data) | self.manifests | self.manifest_lists | self.metadata


def referenced(table: Any, snapshot_ids: Iterable[int] | None = None) -> Referenced:
    """Files referenced by the given snapshots (default: every snapshot the table keeps),
    plus the current metadata file, its log of previous versions and statistics files."""
    metadata = table.metadata
    found = Referenced()
    for data_file in _data_files(table, snapshot_ids, found):
        found.data[data_file.file_path] = data_file.file_size_in_bytes
    found.metadata.add(table.metadata_location)
    found.metadata.update(entry.metadata_file for entry in metadata.metadata_log)
    found.metadata.update(s.statistics_path for s in metadata.statistics)
    found.metadata.update(s.statistics_path for s in metadata.partition_statistics)
    return found


def past_files(table: Any) -> list[Any]:
    """The data files (``DataFile``s) that only older snapshots reference: what time
    travel reaches and the current snapshot does not."""
    live = {f.file_path for f in live_files(table)}
    past = {f.file_path: f for f in _data_files(table, None, Referenced())}
    return [f for path, f in past.items() if path not in live]


def _data_files(table: Any, snapshot_ids: Iterable[int] | None, found: Referenced) -> Iterator[Any]:
    """The live entries' ``DataFile``s of the given snapshots' manifests (each manifest
    read once; the manifests and lists seen are added to ``found``)."""
    from pyiceberg.manifest import ManifestEntryStatus

    wanted = set(snapshot_ids) if snapshot_ids is not None else None
    for snapshot in table.metadata.snapshots:
        if wanted is not None and snapshot.snapshot_id not in wanted:
            continue
        found.manifest_lists.add(snapshot.manifest_list)
        for manifest in manifests_of(snapshot, table.io):
            if manifest.manifest_path in found.manifests:
                continue
            found.manifests.add(manifest.manifest_path)
            for entry in manifest_entries(manifest, table.io):
                if entry.status != ManifestEntryStatus.DELETED:
                    yield entry.data_file


def live_files(table: Any, unread: Callable[[Any], bool] | None = None) -> list[Any]:
    """The data files of the current snapshot (manifest entries' ``DataFile``s), but those
    of the manifests ``unread`` (given a ``ManifestFile``) says need not be read."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return []
    from pyiceberg.manifest import ManifestContent, ManifestEntryStatus

    files: list[Any] = []
    for manifest in manifests_of(snapshot, table.io):
        if manifest.content == ManifestContent.DATA and not (unread and unread(manifest)):
            entries = manifest_entries(manifest, table.io)
            files.extend(e.data_file for e in entries if e.status != ManifestEntryStatus.DELETED)
    return files


# Manifest (or manifest list) path → its entries, while reading once.
_read: dict[str, list[Any]] | None = None
_readers = 0
_lock = threading.Lock()


@contextmanager
def manifests_read_once() -> Iterator[None]:
    """Inside this block each manifest file is read once: maintenance and erasure look at
    a table's files many times over (plan, sizes, expiry before and after, orphans), and
    a manifest never changes once written (a change writes new ones)."""
    global _read, _readers
    with _lock:
        _readers += 1
        _read = {} if _read is None else _read
    try:
        yield
    finally:
        with _lock:
            _readers -= 1
            if not _readers:
                _read = None


def manifests_of(snapshot: Any, io: Any) -> list[Any]:
    """The manifests ``snapshot`` lists, from memory inside :func:`manifests_read_once`."""
    cache = _read
    if cache is None:
        return list(snapshot.manifests(io))
    key = f"list:{snapshot.manifest_list}"
    manifests = cache.get(key)
    if manifests is None:
        manifests = cache[key] = list(snapshot.manifests(io))
    return manifests


def manifest_entries(manifest: Any, io: Any) -> list[Any]:
    """Every entry of ``manifest`` (deleted ones too), from memory inside
    :func:`manifests_read_once`."""
    cache = _read
    if cache is None:
        return _entries(manifest, io)
    entries = cache.get(manifest.manifest_path)
    if entries is None:
        entries = cache[manifest.manifest_path] = _entries(manifest, io)
    return entries


def _entries(manifest: Any, io: Any) -> list[Any]:
    """``manifest.fetch_manifest_entry(io, discard_deleted=False)``, its Avro reader built
    once for each writer schema (:func:`_manifest_file`) instead of once a manifest."""
    reading = _manifest_file()
    if reading is None:  # another pyiceberg than the one this was written for
        return list(manifest.fetch_manifest_entry(io, discard_deleted=False))
    avro_file, inherit = reading
    with avro_file(io.new_input(manifest.manifest_path)) as reader:
        return [inherit(entry, manifest) for entry in reader]


# Avro writer schema (the manifest header's text) → (Iceberg schema, reader); the tables'
# few schemas and partition specs at most.
_avro_readers: dict[str, tuple[Any, Any]] = {}
_READERS_KEPT = 64
_avro_lock = threading.Lock()
_MANIFEST_FILE: Any = None


def _manifest_file() -> tuple[Any, Callable[[Any, Any], Any]] | None:
    """(a reader of manifest files like pyiceberg's ``ManifestFile.fetch_manifest_entry``,
    its ``_inherit_from_manifest``), or None where pyiceberg has not the parts it is made
    of. pyiceberg turns each file's Avro schema into an Iceberg one and resolves a reader
    tree from it — 0.8–1.2 ms a manifest, most of reading a small one — though every
    manifest of a table has the same schema: 71 manifests of a table took 0.08–0.19 s,
    0.013–0.019 s so. (The reader tree holds no state of a file: pyiceberg reads every
    block of a file with one.)"""
    global _MANIFEST_FILE
    if _MANIFEST_FILE is not None:
        return _MANIFEST_FILE or None
    try:
        from pyiceberg.avro.decoder import new_decoder
        from pyiceberg.avro.file import AvroFile
        from pyiceberg.avro.resolver import resolve_reader
        from pyiceberg.manifest import (
            DEFAULT_READ_VERSION,
            MANIFEST_ENTRY_SCHEMAS,
            DataFile,
            DataFileContent,
            FileFormat,
            ManifestEntry,
            ManifestEntryStatus,
            _inherit_from_manifest,
        )
    except ImportError:
        _MANIFEST_FILE = ()
        return None

    read_schema = MANIFEST_ENTRY_SCHEMAS[DEFAULT_READ_VERSION]

    class ManifestAvroFile(AvroFile[ManifestEntry]):  # type: ignore[misc]
        def __init__(self, input_file: Any) -> None:
            super().__init__(
                input_file,
                read_schema,
                read_types={-1: ManifestEntry, 2: DataFile},
                read_enums={0: ManifestEntryStatus, 101: FileFormat, 134: DataFileContent},
            )

        def __enter__(self) -> ManifestAvroFile:
            with self.input_file.open() as f:
                self.decoder = new_decoder(f.read())
            self.header = self._read_header()
            text = self.header.meta.get("avro.schema", "")
            known = _avro_readers.get(text)
            if known is None:
                schema = self.header.get_schema()
                reader = resolve_reader(schema, read_schema, self.read_types, self.read_enums)
                known = (schema, reader)
                with _avro_lock:
                    while len(_avro_readers) >= _READERS_KEPT:
                        del _avro_readers[next(iter(_avro_readers))]
                    _avro_readers[text] = known
            self.schema, self.reader = known
            return self

    _MANIFEST_FILE = (ManifestAvroFile, _inherit_from_manifest)
    return _MANIFEST_FILE  # type: ignore[no-any-return]
