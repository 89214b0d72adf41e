"""Snapshot expiry, and deleting the files no snapshot needs any more.

* Snapshots are expired with pyiceberg's own ``expire_snapshots``: time travel is kept
  for ``maintenance.snapshot_max_age_hours`` (at least ``maintenance.min_snapshots``
  snapshots), thinned in grades (:data:`GRADES`): the newest of each 5 seconds in the
  last minute, of each minute in the last hour, of each
  ``maintenance.time_travel_step_minutes`` beyond. A micro-batch a second would otherwise
  keep 86,400 snapshots a day in every table's metadata.json, which each commit
  rewrites; graded, a table keeps at most min_snapshots + 12 + 60 + age/step, however
  often batches commit. pyiceberg 0.12 only drops expired snapshots from the metadata;
  deleting the files that only they referenced is done here the way Iceberg's
  reachable-file cleanup does it: the files referenced before, minus those referenced
  after.
* Between maintenance runs, commits thin their tables as they go (:func:`thin`, every
  ``maintenance.expire_every_commits`` commits of a table): metadata only, and only
  snapshots whose data files the current snapshot still lists (none after them removed
  a file), so no data file loses its last reference and nothing is deleted — a reader
  that planned an expired snapshot still reads all its files. Their manifest lists and
  merged-away manifests are left for :func:`orphans`, past
  ``maintenance.orphan_metadata_min_age_minutes``.
* Old ``metadata.json`` versions: tables are created with Iceberg's
  ``write.metadata.delete-after-commit.enabled``, so each commit deletes the version that
  falls off the log; versions older than the log left from before are deleted here.
* Orphans — files under the table's folder that no metadata references (a crash between
  writing a batch's files and its commit, a commit that lost a race) — are deleted only
  once older than ``maintenance.orphan_min_age_minutes``, so a commit in flight keeps
  its files (manifests and manifest lists, which a commit writes moments before it
  publishes them: ``maintenance.orphan_metadata_min_age_minutes``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from advertisex.lake.history import Referenced, referenced
from advertisex.util import storage

if TYPE_CHECKING:
    from advertisex.config import ScaleSettings, Settings


@dataclass
class Expiry:
    snapshots: list[int]  # ids expired (or to expire)
    files: list[str]  # files only they referenced, deleted (or to delete)
    bytes: int


def expire(
    table: Any,
    settings: Settings,
    now: datetime,
    *,
    keep: frozenset[int] = frozenset(),
    history_from: int | None = None,
    dry_run: bool = False,
) -> Expiry:
    """Expire old snapshots of ``table`` and delete the files only they referenced.

    ``keep``: snapshots a reader still follows from (the marts' positions): they and every
    snapshot after them are kept whatever their age. ``history_from``: expire every
    snapshot before this one, however young or few (an erasure: time travel must not
    bring a forgotten user back).
    """
    doomed = expired_snapshots(table, settings, now, keep, history_from)
    if not doomed:
        return Expiry([], [], 0)
    before = referenced(table)
    if dry_run:
        kept = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id not in doomed]
        after = referenced(table, kept)
    else:
        from pyiceberg.table.update.snapshot import ExpireSnapshots

        from advertisex.lake.transaction import CachedTransaction

        # pyiceberg's expire_snapshots, in a transaction that works out the metadata once
        # (its own deep-copies every snapshot kept at each of two looks per snapshot).
        expiring = ExpireSnapshots(transaction=CachedTransaction(table, autocommit=True))
        expiring.by_ids(doomed).commit()
        table.refresh()
        after = referenced(table)
    gone = _unreferenced(before, after)
    size = sum(before.data.get(path, 0) for path in gone)
    if not dry_run:
        delete_files(gone, settings.scale)
    return Expiry(doomed, gone, size)


def expired_snapshots(
    table: Any,
    settings: Settings,
    now: datetime,
    keep: frozenset[int] = frozenset(),
    history_from: int | None = None,
) -> list[int]:
    """Snapshot ids to expire: older than the age limit and not among the newest kept
    (with ``history_from``: every one before that snapshot)."""
    current = table.current_snapshot()
    if current is None:
        return []
    snapshots = sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms, reverse=True)
    if history_from is not None:
        after = _followed(table, current, frozenset({history_from}))
        return [s.snapshot_id for s in snapshots if s.snapshot_id not in after]
    upkeep = settings.maintenance
    now_ms = now.timestamp() * 1000
    oldest_kept = now_ms - upkeep.snapshot_max_age_hours * 3_600_000
    step = int(upkeep.time_travel_step_minutes * 60_000)
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()} | {current.snapshot_id}
    protected |= {s.snapshot_id for s in snapshots[: upkeep.min_snapshots]}
    protected |= _followed(table, current, keep)
    doomed, buckets = [], set()
    for snapshot in snapshots:  # newest first: the first of a bucket is its newest
        if snapshot.snapshot_id in protected:
            continue
        if snapshot.timestamp_ms < oldest_kept:
            doomed.append(snapshot.snapshot_id)
        elif step:
            bucket = _bucket(now_ms - snapshot.timestamp_ms, snapshot.timestamp_ms, step)
            if bucket in buckets:  # thinned: a newer snapshot of its bucket stands for it
                doomed.append(snapshot.snapshot_id)
            buckets.add(bucket)
    return doomed


# Time travel's grades: up to this age (ms), one snapshot per this span (ms); beyond the
# last, one per ``maintenance.time_travel_step_minutes``. Never coarser than the step.
GRADES = ((60_000, 5_000), (3_600_000, 60_000))


def _bucket(age_ms: float, timestamp_ms: int, step_ms: int) -> tuple[int, int]:
    """(span, index): snapshots of one bucket stand for each other."""
    span = step_ms
    for limit, width in GRADES:
        if age_ms < limit:
            span = min(width, step_ms)
            break
    return span, timestamp_ms // span


def thin(
    table: Any, settings: Settings, now: datetime, keep: frozenset[int] = frozenset()
) -> list[int]:
    """Expire, in the metadata alone, the snapshots :func:`expired_snapshots` drops whose
    data files the current snapshot still lists (see module doc); return their ids.

    Deletes no file: a reader that planned one of them reads on. Best effort: a commit
    that lost a race (maintenance, another writer) or failed is left for the next time.
    """
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.table.update.snapshot import ExpireSnapshots

    from advertisex.lake.history import MANIFESTS, kind
    from advertisex.lake.transaction import CachedTransaction

    current = table.current_snapshot()
    if current is None:
        return []
    unchanged: set[int] = set()  # the current snapshot's ancestors back to a removal
    snapshot = current
    while snapshot is not None:
        unchanged.add(snapshot.snapshot_id)
        if kind(snapshot) not in ("append", MANIFESTS):
            break  # this one's files are current; those before it may not be
        parent = snapshot.parent_snapshot_id
        snapshot = table.metadata.snapshot_by_id(parent) if parent is not None else None
    doomed = [s for s in expired_snapshots(table, settings, now, keep) if s in unchanged]
    if not doomed:
        return []
    try:
        ExpireSnapshots(transaction=CachedTransaction(table, autocommit=True)).by_ids(
            doomed
        ).commit()
    except (CommitFailedException, ValueError, OSError):  # ValueError: one expired meanwhile
        return []
    return doomed


def _followed(table: Any, current: Any, keep: frozenset[int]) -> set[int]:
    """Snapshots from each of ``keep`` to the current one: a reader following the table
    from there walks them all."""
    chain: list[int] = []
    protected: set[int] = set()
    snapshot = current
    while snapshot is not None and keep - protected:
        chain.append(snapshot.snapshot_id)
        if snapshot.snapshot_id in keep:
            protected.update(chain)
        parent = snapshot.parent_snapshot_id
        snapshot = table.metadata.snapshot_by_id(parent) if parent is not None else None
    return protected


def _unreferenced(before: Referenced, after: Referenced) -> list[str]:
    still = after.all()
    return sorted(
        path
        for path in set(before.data) | before.manifests | before.manifest_lists
        if path not in still
    )


@dataclass
class Orphans:
    files: list[str]
    bytes: int


_VERSION = re.compile(r"^(\d+)-[0-9a-f-]+\.metadata\.json$")


def orphans(
    table: Any,
    settings: Settings,
    now: datetime,
    *,
    min_age: timedelta | None = None,
    dry_run: bool = False,
) -> Orphans:
    """Delete files under the table's folder that no metadata references (see module doc).

    Metadata versions older than the current one are deleted whatever their age: no
    commit in flight can still publish them.
    """
    upkeep = settings.maintenance
    margin = min_age if min_age is not None else timedelta(minutes=upkeep.orphan_min_age_minutes)
    # Manifests and manifest lists are written moments before their commit publishes them.
    metadata_margin = min(margin, timedelta(minutes=upkeep.orphan_metadata_min_age_minutes))
    known = {_key(p) for p in referenced(table).all()}
    current = _version(table.metadata_location.rsplit("/", 1)[-1])
    filesystem, base = storage.resolve(table.location(), settings.scale)
    doomed, size = [], 0
    for info in listing(filesystem, base):
        if _key(info.path) in known:
            continue
        version = _version(info.base_name)
        old_version = version is not None and current is not None and version < current
        modified = datetime.fromtimestamp((info.mtime_ns or 0) / 1e9, UTC)
        manifest = info.base_name.endswith(".avro") and _parent(info.path) == "metadata"
        if not old_version and now - modified < (metadata_margin if manifest else margin):
            continue
        doomed.append(info.path)
        size += info.size or 0
    if not dry_run:
        for path in doomed:
            _delete(filesystem, path)
    return Orphans(doomed, size)


def listing(filesystem: Any, base: str) -> list[Any]:
    """Every file under ``base`` (PyArrow FileInfo, with size and modification time)."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    return [i for i in filesystem.get_file_info(selector) if i.type == pafs.FileType.File]


def _parent(path: str) -> str:
    return path.rstrip("/").rsplit("/", 2)[-2] if "/" in path else ""


def _version(name: str) -> int | None:
    match = _VERSION.match(name)
    return int(match.group(1)) if match else None


def _key(path: str) -> str:
    """A file's path with any URL scheme and host-less ``file://`` prefix dropped, so
    metadata URLs and filesystem listings compare equal."""
    _head, sep, rest = path.partition("://")
    return rest if sep else path


def delete_files(paths: list[str], scale: ScaleSettings | None) -> None:
    """Delete files by URL; one already gone is fine (another cleanup got there first)."""
    for url in paths:
        filesystem, path = storage.resolve(url, scale)
        _delete(filesystem, path)


def _delete(filesystem: Any, path: str) -> None:
    try:
        filesystem.delete_file(path)
    except FileNotFoundError:
        pass
