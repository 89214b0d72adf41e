"""The maintenance task: retention, compaction, snapshot expiry and orphan removal, per table.

:func:`maintain` runs, for each table: retention (``lake.retention``), compaction
(``lake.compaction``), snapshot expiry with the files only expired snapshots needed,
and orphan removal (``lake.expiry``); then retention of the landing zone. Each table
change is one atomic commit, made on fresh metadata and retried when the processor
commits first, so maintenance can run beside ``process --follow`` (which also runs it
on a schedule). A table that cannot be maintained now (a conflict that outlasted the
retries) is reported with its error and left for the next run; the others go on.

Every run leaves one row per table in ``ops.maintenance`` (what it did, the table before
and after): the durable record ``advertisex status`` and the console read.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from advertisex.lake import compaction, expiry, retention
from advertisex.lake.history import live_files, manifests_read_once
from advertisex.model.schemas import MAINTENANCE, TABLES
from advertisex.util.timeutil import utcnow

if TYPE_CHECKING:
    from advertisex.lake.tables import Lake
    from advertisex.landing.zone import LandingZone

log = logging.getLogger(__name__)

MAINTENANCE_TABLE = "ops.maintenance"
LANDING = "landing"
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class TableUpkeep:
    """What one maintenance run did to one table (or the landing zone)."""

    table: str
    data_files_before: int = 0
    data_files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    files_compacted: int = 0
    files_written: int = 0
    snapshots_expired: int = 0
    files_deleted: int = 0
    orphans_deleted: int = 0
    partitions_expired: int = 0
    rows_expired: int = 0
    archived: int = 0
    # The landing zone's: done marks of retired days folded (Lake.fold_retired_marks) and
    # ingest index markers packed (LandingZone.pack_markers). Not kept in ops.maintenance.
    marks_folded: int = 0
    markers_packed: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class UpkeepReport:
    run_id: str
    trigger: str
    started_at: datetime
    dry_run: bool
    tables: list[TableUpkeep] = field(default_factory=list)
    finished_at: datetime | None = None

    @property
    def seconds(self) -> float:
        end = self.finished_at or utcnow()
        return (end - self.started_at).total_seconds()

    def total(self, name: str) -> int:
        return sum(int(getattr(t, name)) for t in self.tables)


def maintain(
    lake: Lake,
    landing: LandingZone | None = None,
    tables: list[str] | None = None,
    *,
    dry_run: bool = False,
    trigger: str = "command",
    progress: Progress | None = None,
    now: datetime | None = None,
    keep: Mapping[str, frozenset[int]] | None = None,
    stop: threading.Event | None = None,
) -> UpkeepReport:
    """Maintain ``tables`` (default: every table that exists) and the landing zone (when
    given and no table is named); with ``dry_run`` only say what would be done.

    ``keep``: per table, snapshots a reader still follows from (the marts' positions):
    never expired, so that reader goes on incrementally. ``stop``: when set, the run ends
    after the table it is on (the tables not reached wait for the next run).
    """
    from advertisex.errors import NotFoundError

    if not dry_run:
        lake.check_writable()  # a copy's orphan removal would delete the original's files
    now = now or utcnow()
    for name in tables or ():
        if name not in TABLES:
            raise NotFoundError(
                f"unknown table {name!r}", hint="tables: " + ", ".join(sorted(TABLES))
            )
    names = tables or existing_tables(lake)
    report = UpkeepReport(uuid.uuid4().hex[:12], trigger, now, dry_run)
    for done, name in enumerate(names):
        if stop is not None and stop.is_set():
            break
        if progress:
            progress(name, done, len(names))
        kept = (keep or {}).get(name, frozenset())
        with manifests_read_once():
            report.tables.append(_maintain_table(lake, name, now, dry_run, kept))
    if landing is not None and not tables and not (stop is not None and stop.is_set()):
        report.tables.append(_maintain_landing(lake, landing, now, dry_run))
    if progress:
        progress("done", len(names), len(names))
    report.finished_at = utcnow()
    if not dry_run:
        record(lake, report)
    return report


def existing_tables(lake: Lake) -> list[str]:
    """Tables the catalog holds (maintenance never creates one)."""
    from pyiceberg.exceptions import NoSuchNamespaceError

    held = set()
    for namespace in {name.split(".", 1)[0] for name in TABLES}:
        try:
            held |= {".".join(t) for t in lake.catalog.list_tables(namespace)}
        except NoSuchNamespaceError:  # nothing written there yet
            continue
    return [name for name in TABLES if name in held]


def _maintain_table(
    lake: Lake, name: str, now: datetime, dry_run: bool, keep: frozenset[int]
) -> TableUpkeep:
    from pyiceberg.exceptions import CommitFailedException, ValidationException
    from sqlalchemy.exc import OperationalError

    from advertisex.errors import TransientError
    from advertisex.lake.damage import explained
    from advertisex.util.retry import retrying

    started = time.perf_counter()
    result = TableUpkeep(name)
    settings = lake.settings

    def fresh() -> Any:
        lake.refresh()
        return lake.table(name)

    def step(action: Callable[[], Any]) -> Any:
        return retrying(
            action,
            retry_on=(TransientError, OperationalError, CommitFailedException),
            what=f"maintaining {name}",
        )

    try:
        table = fresh()
        result.data_files_before, result.bytes_before = _size(table)
        expired = step(
            lambda: retention.expire_partitions(fresh(), name, settings, now, dry_run=dry_run)
        )
        result.partitions_expired = len(expired.partitions)
        result.rows_expired, result.archived = expired.rows, expired.archived
        work = compaction.plan(fresh(), settings)
        result.files_compacted = work.files
        if not dry_run:
            result.files_written = step(
                lambda: compaction.compact(
                    fresh(), name, compaction.plan(fresh(), settings), settings
                )
            )
        gone = step(lambda: expiry.expire(fresh(), settings, now, keep=keep, dry_run=dry_run))
        result.snapshots_expired, result.files_deleted = len(gone.snapshots), len(gone.files)
        result.orphans_deleted = len(expiry.orphans(fresh(), settings, now, dry_run=dry_run).files)
        result.data_files_after, result.bytes_after = _size(fresh())
    except (CommitFailedException, ValidationException, OperationalError, OSError) as error:
        # A file the storage lost looks like a lost race here: said as what it is.
        told = explained(lake, error, [name]) if isinstance(error, OSError) else None
        if told is not None:
            result.error = f"{type(told).__name__}: {told}"
        else:
            result.error = _failed(name, error, "the warehouse")
    result.seconds = time.perf_counter() - started
    return result


def _maintain_landing(
    lake: Lake, landing: LandingZone, now: datetime, dry_run: bool
) -> TableUpkeep:
    started = time.perf_counter()
    result = TableUpkeep(LANDING)
    try:
        expired = retention.expire_landing(landing, lake, lake.settings, now, dry_run=dry_run)
        result.partitions_expired = len(expired.partitions)
        result.files_deleted, result.archived = len(expired.files), expired.archived
        result.bytes_before = expired.bytes  # bytes of the segments expired
        if not dry_run:
            result.marks_folded = lake.fold_retired_marks(landing, now.date())
            result.markers_packed = landing.pack_markers(now)
    except OSError as error:
        result.error = _failed(LANDING, error, "the landing zone")
    result.seconds = time.perf_counter() - started
    return result


def _failed(name: str, error: Exception, where: str) -> str:
    """What ``ops.maintenance``, ``maintain`` and the console say of a table maintenance
    left as it was: one line, what happened and what to do. pyiceberg's or the driver's
    own text (a conflict's requirement, a SQL statement, a stack of paths) goes to the log
    only: a contended table at INFO (the next run tries again), a storage failure as a
    warning (someone has to look)."""
    from advertisex.util.storage import os_reason

    raw = f"{type(error).__name__}: {error}"
    if isinstance(error, OSError):
        log.warning("maintaining %s failed: %s", name, raw)
        return (
            f"a file of {where} could not be read or written ({os_reason(error)}): left as it "
            "was; check the disk or storage (the log has the details), the next run tries again"
        )
    log.info("maintaining %s failed: %s", name, raw)
    if type(error).__name__ == "OperationalError":  # SQLAlchemy's: the catalog database
        return (
            "the catalog database stayed locked by another writer: left as it was; "
            "the next run tries again"
        )
    return (
        "changed by another writer meanwhile (a batch, forget, a rebuild): left as it was; "
        "the next run tries again"
    )


def _size(table: Any) -> tuple[int, int]:
    files = live_files(table)
    return len(files), sum(f.file_size_in_bytes for f in files)


def record(lake: Lake, report: UpkeepReport) -> None:
    """Append the run's rows to ``ops.maintenance``."""
    finished = report.finished_at or utcnow()
    rows = [
        {
            "run_id": report.run_id,
            "trigger": report.trigger,
            "started_at": report.started_at,
            "finished_at": finished,
            **asdict(t),
        }
        for t in report.tables
    ]
    lake.commit_batch({MAINTENANCE_TABLE: pa.Table.from_pylist(rows, schema=MAINTENANCE)}, [], {})


def last_finished(lake: Lake) -> datetime | None:
    """When the last maintenance run finished (None: never)."""
    import pyarrow.compute as pc

    rows = lake.read(MAINTENANCE_TABLE, fields=("finished_at",))
    return pc.max(rows.column("finished_at")).as_py() if rows.num_rows else None


def last_runs(lake: Lake) -> pa.Table:
    """Each table's latest ``ops.maintenance`` row (empty before the first run)."""
    rows = lake.read(MAINTENANCE_TABLE)
    if rows.num_rows == 0:
        return rows
    import pyarrow.compute as pc

    newest = rows.group_by("table").aggregate([("finished_at", "max")])
    keys = pa.table(
        {"table": newest.column("table"), "finished_at": newest.column("finished_at_max")}
    )
    latest = rows.join(keys, ["table", "finished_at"], join_type="inner")
    return latest.sort_by([("table", "ascending")]).filter(pc.is_valid(latest.column("table")))


def health(lake: Lake) -> list[dict[str, Any]]:
    """Per table: data files, their average size, bytes, small files awaiting compaction,
    snapshots and manifests kept, and when maintenance last ran on it.

    Read from the tables' metadata files where the lake allows it (``lake.listing``: a
    SQLite catalog over a local warehouse), so that ``advertisex status`` loads neither
    pyiceberg nor SQLAlchemy (≈ 0.45 s of its 0.8 s); through pyiceberg elsewhere."""
    from advertisex.lake.compaction import SMALL
    from advertisex.lake.listing import TableLook, table_looks

    small_below = SMALL * lake.settings.maintenance.target_file_bytes
    lake.check_home()
    settings = lake.settings
    looks = table_looks(settings.catalog_uri, settings.lake.catalog_name, list(TABLES))
    if looks is None:
        return _planned_health(lake, small_below)
    # Read through pyiceberg, ops.maintenance is made on its first read (Lake.table), so
    # health has always shown it, empty before the first run: shown so, not made.
    looks.setdefault(MAINTENANCE_TABLE, TableLook((), 0, 0))
    last = _last_finished([path for path, _ in looks[MAINTENANCE_TABLE].files])
    return [
        _health_row(
            name,
            [size for _, size in look.files],
            look.snapshots,
            look.manifests,
            small_below,
            last.get(name),
        )
        for name, look in ((n, looks[n]) for n in TABLES if n in looks)
    ]


def _planned_health(lake: Lake, small_below: float) -> list[dict[str, Any]]:
    """:func:`health` through pyiceberg, on any catalog and storage."""
    last = {r["table"]: r for r in last_runs(lake).to_pylist()}
    rows = []
    for name in existing_tables(lake):
        table = lake.table(name)
        sizes = [f.file_size_in_bytes for f in live_files(table)]
        current = table.current_snapshot()
        run = last.get(name)
        manifests = len(current.manifests(table.io)) if current else 0
        rows.append(
            _health_row(
                name,
                sizes,
                len(table.metadata.snapshots),
                manifests,
                small_below,
                run["finished_at"] if run else None,
            )
        )
    return rows


def _health_row(
    name: str,
    sizes: list[int],
    snapshots: int,
    manifests: int,
    small_below: float,
    last_maintenance: datetime | None,
) -> dict[str, Any]:
    """One table's row of :func:`health`, from its data files' sizes however they were read."""
    size = sum(sizes)
    return {
        "table": name,
        "data_files": len(sizes),
        "avg_file_bytes": size // len(sizes) if sizes else 0,
        "bytes": size,
        "small_files": sum(s < small_below for s in sizes),
        "snapshots": snapshots,
        "manifests": manifests,
        "last_maintenance": last_maintenance,
    }


def _last_finished(paths: list[str]) -> dict[str, datetime]:
    """Table → when maintenance last finished on it, from ``ops.maintenance``'s data files
    (what :func:`last_runs` reads through pyiceberg)."""
    if not paths:
        return {}
    import pyarrow.parquet as pq

    at = MAINTENANCE.field("finished_at").type
    rows = pa.concat_tables(
        pq.read_table(path, columns=["table", "finished_at"]).cast(
            pa.schema([pa.field("table", pa.string()), pa.field("finished_at", at)])
        )
        for path in paths
    )
    newest = rows.group_by("table").aggregate([("finished_at", "max")])
    return {
        table: finished
        for table, finished in zip(
            newest.column("table").to_pylist(),
            newest.column("finished_at_max").to_pylist(),
            strict=True,
        )
        if table is not None and finished is not None
    }
