"""Retention: whole days past their keep-by date leave the tables and the landing zone.

A table's retention (``retention.days``) counts days of its day partition (the event day
for events and marts, the ingest day for quarantine). Every data file of a partition
older than the cut-off is removed by one ``delete`` snapshot per table — a
partition-level delete: no file is rewritten — after being copied to
``retention.archive`` when one is configured. The files themselves go when that
snapshot's predecessors expire (time travel still reaches them until then).

The landing zone keeps processed segments ``retention.landing_days`` landing days;
older ones are archived (if configured) and deleted. A segment not yet processed is
never touched, nor anything under ``_unreadable``, nor a file set aside whole that is still
in quarantine (``segment_unreadable``: kept for its replay). Their done marks stay in the catalog,
so a replay knows the segments are gone.

``ops.batches`` is never expired: its accounting rows outlive the rows they counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advertisex.config import retention_days
from advertisex.lake import durability
from advertisex.lake.history import RETENTION, live_files
from advertisex.lake.rewrite import commit_swap
from advertisex.landing.zone import landing_day
from advertisex.model.schemas import TABLES
from advertisex.util import storage

if TYPE_CHECKING:
    from collections.abc import Collection

    from advertisex.config import Settings
    from advertisex.lake.tables import Lake
    from advertisex.landing.zone import LandingZone

EPOCH = date(1970, 1, 1)


@dataclass
class Expired:
    partitions: list[date]
    files: list[Any]  # DataFiles (tables) or Segments (landing)
    rows: int
    bytes: int
    archived: int = 0


def cutoff(days: int, now: datetime) -> date:
    """The oldest day kept when ``days`` days are kept, today included."""
    return now.date() - timedelta(days=days - 1)


def expire_partitions(
    table: Any,
    name: str,
    settings: Settings,
    now: datetime,
    *,
    dry_run: bool = False,
    among: Collection[str] | None = None,
) -> Expired:
    """Remove (archive first, if configured) the partitions of ``name`` older than its
    retention; nothing when the table has none. ``among``: only those of these data files
    (a batch's, which the processor expires once the marts counted their rows)."""
    days = retention_days(settings, name)
    if days is None or TABLES[name].partition_by_day is None:
        return Expired([], [], 0, 0)
    oldest = (cutoff(days, now) - EPOCH).days
    doomed = [
        f
        for f in live_files(table)
        if f.partition is not None
        and f.partition[0] is not None
        and f.partition[0] < oldest
        and (among is None or f.file_path in among)
    ]
    result = Expired(
        sorted({EPOCH + timedelta(days=f.partition[0]) for f in doomed}),
        doomed,
        sum(f.record_count for f in doomed),
        sum(f.file_size_in_bytes for f in doomed),
    )
    if dry_run or not doomed:
        return result
    archive = settings.retention.archive
    if archive:
        namespace, table_name = name.split(".", 1)
        copies = []
        for data_file in doomed:
            folder, file_name = data_file.file_path.rsplit("/", 2)[-2:]
            target = storage.join(archive, namespace, table_name, folder, file_name)
            copies.append((data_file.file_path, target))
        result.archived = archive_all(copies, settings)
    commit_swap(table, doomed, [], RETENTION)
    return result


def set_aside_files(lake: Lake) -> set[str]:
    """Landing files set aside whole and still in quarantine (``segment_unreadable``
    entries, at position 0): retention keeps them, for a replay to decode."""
    from pyiceberg.expressions import EqualTo

    from advertisex.model.reasons import SEGMENT_UNREADABLE

    rows = lake.read(
        "curated.quarantine",
        EqualTo("source_position", 0),  # type: ignore[call-arg,misc]
        ("source_file", "reasons"),
    )
    return {
        name
        for name, reasons in zip(
            rows.column("source_file").to_pylist(), rows.column("reasons").to_pylist(), strict=True
        )
        if any(r.startswith(SEGMENT_UNREADABLE) for r in reasons or ())
    }


def expire_landing(
    landing: LandingZone,
    lake: Lake,
    settings: Settings,
    now: datetime,
    *,
    dry_run: bool = False,
) -> Expired:
    """Delete (archive first, if configured) processed segments past ``retention.landing_days``.

    Only the landing days past it are listed, and only their segments' done marks read:
    the zone keeps months of segments (tens of thousands a day of one-second collector
    segments), and listing every one of them and reading every mark, each maintenance
    run, cost what the zone holds rather than what leaves it (180,000 segments, 6,000 of
    them expiring: 2.6 s and 300 MiB)."""
    days = settings.retention.landing_days
    if days is None:
        return Expired([], [], 0, 0)
    oldest = cutoff(days, now)
    listed = landing.segments(before=oldest)
    done = lake.done_segments(among=[s.name for s in listed]) if listed else set()
    if done:
        done -= set_aside_files(lake)  # those wait for their replay
    doomed = [
        s for s in listed if s.name in done and (day := landing_day(s)) is not None and day < oldest
    ]
    result = Expired(
        sorted({d for s in doomed if (d := landing_day(s)) is not None}),
        doomed,
        0,
        sum(s.size for s in doomed),
    )
    if dry_run:
        return result
    archive = settings.retention.archive
    if archive:
        copies = [(landing.location(s), storage.join(archive, "landing", s.name)) for s in doomed]
        result.archived = archive_all(copies, settings)
    landing.remove_all(doomed)
    return result


# A copy holds this much of a file at a time: a landed partner file can be gigabytes, and a
# compacted data file is up to maintenance.target_file_bytes (128 MiB), each held whole
# (twice: read, then copied into bytes) before.
COPY_BYTES = 8 << 20


def archive_all(copies: list[tuple[str, str]], settings: Settings) -> int:
    """Copy each (source, target) pair (:func:`copy`), several at once (the copies wait on
    disks and networks, and pyarrow's streams leave the GIL), then make the local targets
    durable: the caller deletes the sources next, and a machine dying after that must not
    take the only copy with it. How many were copied."""
    from advertisex.util.parallel import in_order

    for _ in in_order(lambda pair: copy(*pair, settings), copies):
        pass
    local = [path for _, target in copies if (path := storage.local_path(target)) is not None]
    archive = storage.local_path(settings.retention.archive or "")
    durability.sync(local, archive if archive and os.path.isdir(archive) else None)
    return len(copies)


def copy(source: str, target: str, settings: Settings) -> None:
    """Copy one file between any two locations (folder or object store), a stream of
    :data:`COPY_BYTES` at a time."""
    filesystem, path = storage.resolve(source, settings.scale)
    target_filesystem, target_path = storage.resolve(target, settings.scale)
    if not storage.is_remote(target):  # each folder made for it flushed in its parent
        storage.make_folders(Path(target_path).parent)
    with (
        filesystem.open_input_stream(path) as stream,
        target_filesystem.open_output_stream(target_path) as out,
    ):
        while chunk := stream.read(COPY_BYTES):
            out.write(chunk)
