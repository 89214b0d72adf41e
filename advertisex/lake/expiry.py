"""Snapshot expiry, and deleting the files no snapshot needs any more.

* Snapshots are expired with pyiceberg's own ``expire_snapshots``: time travel is kept
  for ``maintenance.snapshot_max_age_hours`` (at least ``maintenance.min_snapshots``
  snapshots), thinned past the last ``maintenance.time_travel_step_minutes`` to the
  newest snapshot of each step. A micro-batch a second would otherwise keep 86,400
  snapshots a day in every table's metadata.json, which each commit rewrites; thinned,
  a table keeps about age/step + commits per step. pyiceberg 0.12 only drops expired
  snapshots from the metadata; deleting the files that only they referenced is done
  here the way Iceberg's reachable-file cleanup does it: the files referenced before,
  minus those referenced after.
* Old ``metadata.json`` versions: tables are created with Iceberg's
  ``write.metadata.delete-after-commit.enabled``, so each commit deletes the version that
  falls off the log; versions older than the log left from before are deleted here.
* Orphans — files under the table's folder that no metadata references (a crash between
  writing a batch's files and its commit, a commit that lost a race) — are deleted only
  once older than ``maintenance.orphan_min_age_minutes``, so a commit in flight keeps
  its files.
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
    step = upkeep.time_travel_step_minutes * 60_000
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()} | {current.snapshot_id}
    protected |= {s.snapshot_id for s in snapshots[: upkeep.min_snapshots]}
    protected |= _followed(table, current, keep)
    doomed, steps = [], set()
    for snapshot in snapshots:  # newest first: the first of a step is its newest
        if snapshot.snapshot_id in protected:
            continue
        if snapshot.timestamp_ms < oldest_kept:
            doomed.append(snapshot.snapshot_id)
        elif step and now_ms - snapshot.timestamp_ms >= step:
            bucket = snapshot.timestamp_ms // step
            if bucket in steps:  # thinned: a newer snapshot of the same step stands for it
                doomed.append(snapshot.snapshot_id)
            steps.add(bucket)
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
    margin = (
        min_age
        if min_age is not None
        else timedelta(minutes=settings.maintenance.orphan_min_age_minutes)
    )
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
        if not old_version and now - modified < margin:
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
