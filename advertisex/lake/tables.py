"""The lake: AdvertiseX's Iceberg tables on the configured catalog and warehouse.

Creates the tables on first use (partitioned by event day, sorted by campaign and
time), appends Arrow data in atomic multi-table batches, and lists the data files a
query engine needs to read a table's current snapshot.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advertisex.errors import CommitConflictError, LakeError
from advertisex.lake.listing import current_files, foreign_table, recorded_warehouse
from advertisex.util.timeutil import EPOCH, from_micros

if TYPE_CHECKING:  # the catalog, Arrow and the schemas load on first use (CLI start-up)
    from concurrent.futures import Future

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from pyiceberg.table import Table

    from advertisex.config import ScaleSettings, Settings
    from advertisex.errors import AdvertiseXError
    from advertisex.lake.catalog import AtomicSqlCatalog, SegmentDone, SegmentLedger
    from advertisex.lake.datafiles import Footer, WrittenFile
    from advertisex.lake.kept import KeptRows
    from advertisex.lake.marks import SqliteMarks
    from advertisex.landing.zone import LandingZone
    from advertisex.model.schemas import TableSpec

# Done marks of a landing day are folded (Lake.fold_retired_marks) no sooner than this after
# it: the monitors read the last hours' marks by name, which a folded day would unpack.
log = logging.getLogger(__name__)

FOLD_AFTER = timedelta(days=2)
DAY = timedelta(days=1)
EPOCH_DAY = EPOCH.date()  # day 0 of an Iceberg day partition


class Lake:
    """Tables by qualified name (``curated.impressions``), created on first open.

    Opening a Lake is cheap: the Iceberg catalog (pyiceberg, SQLAlchemy) and Arrow load on
    first use, and listing a table's files for a query (:meth:`data_files_of`) needs
    neither on the default lake — that is what lets ``advertisex query`` answer at once.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tables: dict[str, Table] = {}
        # One opening of a table at a time (the marts' tables open on a thread of their own
        # while the marts are computed: marts.iceberg.update_marts), not one of every table.
        self._opening: dict[str, threading.RLock] = {}
        self._opening_lock = threading.Lock()
        # Planned listings by table version (metadata file): a refresh that finds a table
        # unchanged does not read its manifests again.
        self._files: dict[str, tuple[str, list[str]]] = {}
        # Scan tasks of spans of days of each table's current version, for reads of time
        # ranges (read_within, read_on_days): each plan weighs every manifest entry of
        # those days (≈ 0.2 s a table of a live lake's micro-batch files), and a marts
        # update read each curated table two to four times for one version of it.
        self._tasks: dict[str, list[tuple[str, date, date, list[Any]]]] = {}
        # The writer's footers of data files written here and not committed yet, by URL:
        # committing them need not read them back (``lake.datafiles.add_files``).
        self._footers: dict[str, Footer] = {}
        self._footers_lock = threading.Lock()  # pieces of a batch write side by side
        # Commits per table since it was last thinned (``lake.expiry.thin``), and who says
        # which snapshots readers follow from (the marts' positions: the API sets it).
        self._unthinned: dict[str, int] = {}
        self.followed: Callable[[], Mapping[str, frozenset[int]]] = lambda: {}
        self._at_home = False  # its tables checked to be under its own warehouse
        # Set when this data directory is a copy of a lake still where it was made.
        self._copy_of: AdvertiseXError | None = None
        # Rows written here kept for a reader right after their commit (keep_written).
        self._kept: KeptRows | None = None

    def check_home(self) -> None:
        """Refuse, with what to do, a lake moved from another data directory: its tables
        are recorded where it was made (Iceberg keeps absolute paths), and every read
        would fail on a missing file — which said "a bug in advertisex". Only for the
        default layout (the catalog and the warehouse under the data directory), where
        every table is created under the warehouse; a configured catalog or warehouse may
        hold tables anywhere.

        A copy whose original is still there reads the original's files, and is read-only
        (:meth:`check_writable`): what it wrote would land in the original's folders."""
        if self._at_home:
            return
        settings = self.settings
        if not settings.lake.catalog_uri and not settings.lake.warehouse:
            _check_catalog_kept(settings)
            found = foreign_table(
                settings.catalog_uri, settings.lake.catalog_name, settings.warehouse_uri
            )
            if found is not None:
                made_at = _made_at(*found)
                if not Path(_local(found[1])).exists():
                    raise _moved(settings, made_at)
                if not _same_folder(made_at, settings.data_dir):  # not a symlink's other name
                    self._copy_of = _copied(settings, made_at)
        self._at_home = True

    def read_only(self) -> AdvertiseXError | None:
        """Why this lake cannot be changed here (a copy of one still in place), or None."""
        self.check_home()
        return self._copy_of

    def check_writable(self) -> None:
        """Refuse, with what to do, to change a copy of a lake (see :meth:`check_home`)."""
        self.check_home()
        if self._copy_of is not None:
            raise self._copy_of

    @cached_property
    def catalog(self) -> AtomicSqlCatalog:
        from advertisex.lake.catalog import AtomicSqlCatalog
        from advertisex.util.storage import iceberg_properties, make_folders

        settings = self.settings
        self.check_home()
        try:
            # Each folder made flushed in its parent: a commit flushes the folders up to the
            # warehouse, not the warehouse's own name.
            if settings.catalog_uri.startswith("sqlite:///"):
                make_folders(Path(settings.catalog_uri.removeprefix("sqlite:///")).parent)
            if settings.warehouse_uri.startswith("file://"):
                make_folders(Path(settings.warehouse_uri.removeprefix("file://")))
            catalog = AtomicSqlCatalog(
                settings.lake.catalog_name,
                uri=settings.catalog_uri,
                warehouse=settings.warehouse_uri,
                **iceberg_properties(settings.scale),  # object-store endpoint and credentials
            )
            catalog.refuse_commits = self._copy_of  # whatever the caller forgot to check
            return catalog
        except Exception as error:
            translated = _catalog_unavailable(settings.catalog_uri, error)
            if translated is error:
                raise
            raise translated from error

    def catalog_made(self) -> bool:
        """Whether the catalog may hold tables: False only for a SQLite catalog whose
        database file was never made (a new lake's first ``process``), where no table
        exists and asking for one would make the catalog (≈ 0.05-0.1 s) to find it empty."""
        database = _sqlite_file(self.settings.catalog_uri)
        return database is None or Path(database).exists()

    # ------------------------------------------------------------------ tables
    def table(self, name: str) -> Table:
        """The Iceberg table ``name``, created with its spec if it does not exist yet."""
        cached = self._tables.get(name)
        if cached is not None:
            return cached
        with self._opening_lock:
            opening = self._opening.setdefault(name, threading.RLock())
        with opening:
            cached = self._tables.get(name)  # opened by another thread while this one waited
            return cached if cached is not None else self._open(name)

    def open_beside(self, names: Sequence[str]) -> Future[None]:
        """Open (create) the tables ``names`` one after the other on a thread of their own,
        while the caller goes on; done once all are open (or with what opening one raised).
        Until a table is open, a thread asking for it waits for this one (it holds each
        table's opening from the start), so no two threads create tables at once."""
        from concurrent.futures import Future

        opened: Future[None] = Future()
        holding = threading.Event()

        def open_all() -> None:
            held: list[threading.RLock] = []
            try:
                for name in names:
                    with self._opening_lock:
                        opening = self._opening.setdefault(name, threading.RLock())
                    opening.acquire()
                    held.append(opening)
                holding.set()
                for name, opening in zip(names, list(held), strict=True):
                    self.table(name)
                    opening.release()
                    held.remove(opening)
                opened.set_result(None)
            except BaseException as error:
                opened.set_exception(error)
            finally:
                holding.set()
                for opening in held:
                    opening.release()

        threading.Thread(target=open_all, name="tables", daemon=True).start()
        holding.wait()
        return opened

    def _open(self, name: str) -> Table:
        from advertisex.model.schemas import TABLES

        spec = TABLES[name]
        from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError

        try:
            table = self.catalog.load_table(name)
        except NoSuchTableError:
            with contextlib.suppress(NamespaceAlreadyExistsError):
                self.catalog.create_namespace(spec.namespace)
            table = self._create(spec)
        table = _evolve(table, spec)
        if not self.catalog.in_group:  # a property change must not join a batch's group
            table = _with_properties(table, table_properties(self.settings, spec))
        self._tables[name] = table
        return table

    def _create(self, spec: TableSpec) -> Table:
        """Create ``spec``'s table with its day partition and sort order in one metadata
        write (not three: creating the lake's tables is part of every first run)."""
        from pyiceberg.catalog import Catalog
        from pyiceberg.exceptions import TableAlreadyExistsError
        from pyiceberg.partitioning import (
            UNPARTITIONED_PARTITION_SPEC,
            PartitionField,
            PartitionSpec,
        )
        from pyiceberg.schema import assign_fresh_schema_ids
        from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, NullOrder, SortField, SortOrder
        from pyiceberg.transforms import DayTransform

        # Field ids first (what pyiceberg gives an Arrow schema), so the partition field
        # and the sort order can name their source columns.
        schema = assign_fresh_schema_ids(Catalog._convert_schema_if_needed(spec.schema, 2))
        partitioning = UNPARTITIONED_PARTITION_SPEC
        if spec.partition_by_day:
            partitioning = PartitionSpec(
                PartitionField(
                    source_id=schema.find_field(spec.partition_by_day).field_id,
                    field_id=1000,  # Iceberg's first partition field id
                    transform=DayTransform(),
                    name=f"{spec.partition_by_day}_day",
                )
            )
        order = UNSORTED_SORT_ORDER
        if spec.sort_by:
            order = SortOrder(
                *(
                    SortField(
                        source_id=schema.find_field(c).field_id,
                        transform=_identity(),
                        null_order=NullOrder.NULLS_LAST,  # as ``update_sort_order().asc`` has it
                    )
                    for c in spec.sort_by
                )
            )
        try:
            return self.catalog.create_table(
                spec.qualified,
                schema=schema,
                partition_spec=partitioning,
                sort_order=order,
                properties={
                    "write.parquet.compression-codec": "zstd",
                    "format-version": "2",
                    **table_properties(self.settings, spec),
                },
            )
        except TableAlreadyExistsError:  # another process created it first
            return self.catalog.load_table(spec.qualified)

    def refresh(self) -> None:
        self._tables.clear()

    def ensure_all(self) -> None:
        from advertisex.model.schemas import TABLES

        for name in TABLES:
            self.table(name)

    # ------------------------------------------------------------------ writes
    def commit_batch(
        self,
        appends: Mapping[str, pa.Table],
        segments: list[SegmentDone],
        properties: dict[str, str],
    ) -> None:
        """Append every non-empty table and mark ``segments`` done, all or nothing.

        The rows are written as data files first (:meth:`write_files`), then registered
        with the segment marks in one catalog transaction (:meth:`commit_files`).
        """
        written = self.write_files(appends, properties.get("advertisex.batch-id", "commit"))
        self.commit_files(
            {name: [f.url for f in files] for name, files in written.items()},
            segments,
            properties,
        )

    def write_files(
        self, appends: Mapping[str, pa.Table], prefix: str
    ) -> dict[str, list[WrittenFile]]:
        """Write each non-empty table's rows as data files in its location (several tables
        at once; ``lake.datafiles``), named ``prefix``-…; nothing is committed yet.

        All or none: if one fails (a full disk: :class:`~advertisex.errors.StorageError`),
        the files this call wrote are removed — no snapshot references them.
        """
        from concurrent.futures import ThreadPoolExecutor

        from advertisex.lake.datafiles import remove_files, write_data_files
        from advertisex.model.schemas import TABLES

        self.check_writable()
        with storage_errors(self.settings.warehouse_uri):
            # Tables are opened (and created) here, one by one: not in the writer threads.
            locations = {
                name: self.table(name).location() for name, data in appends.items() if data.num_rows
            }

        kept = self._kept

        def write(name: str) -> list[WrittenFile]:
            data = _conform(appends[name], TABLES[name].schema)
            keep = functools.partial(kept.add, name) if kept and kept.wanted(name) else None
            written: list[WrittenFile] = []
            try:
                for file in write_data_files(
                    name, data, locations[name], prefix, self.settings.scale, keep
                ):
                    written.append(file)
            except BaseException:
                remove_files([f.url for f in written], self.settings.scale)  # days so far
                raise
            return written

        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {name: pool.submit(write, name) for name in locations}
        failed = [f.exception() for f in futures.values() if f.exception() is not None]
        if failed:  # the other tables' files are nobody's either
            done = [f.result() for f in futures.values() if f.exception() is None]
            remove_files([file.url for files in done for file in files], self.settings.scale)
            raise failed[0]  # type: ignore[misc]
        written = {name: future.result() for name, future in futures.items()}
        with self._footers_lock:
            for files in written.values():
                self._footers.update((f.url, f.footer) for f in files if f.footer)
        return written

    def remove_files(self, files: Mapping[str, Sequence[str]]) -> None:
        """Delete written data files that will not be committed (best effort)."""
        from advertisex.lake.datafiles import remove_files

        urls = [url for paths in files.values() for url in paths]
        self.take_footers(urls)
        if self._kept is not None:
            self._kept.drop(urls)
        remove_files(urls, self.settings.scale)

    def keep_written(self, columns: Mapping[str, Sequence[str]], budget_bytes: int) -> None:
        """From now on keep, in memory, ``columns`` of the rows written into data files of
        those tables (by :meth:`write_files`), so that reading exactly those files whole
        (:meth:`read_planned`, :meth:`written`) takes them from memory — the marts' update
        right after a batch, which read back what the batch had just written. At most
        ``budget_bytes`` are kept (past it, none: ``lake.kept``); :meth:`forget_written`
        lets them go."""
        from advertisex.lake.kept import KeptRows

        self._kept = KeptRows(columns, budget_bytes)

    def settle_written(self) -> None:
        """Start turning the rows :meth:`keep_written` kept into their tables' types on a
        thread of its own (``lake.kept.KeptRows.settle``): beside a batch's commit."""
        kept = self._kept
        if kept is not None:
            kept.settle_beside()

    def forget_written(self) -> None:
        """Let go of the rows :meth:`keep_written` kept, and keep no more."""
        self._kept = None

    def written(self, name: str, urls: Sequence[str], fields: Sequence[str]) -> pa.Table | None:
        """``fields`` of the rows of ``name``'s data files ``urls``, in that order and in the
        table's types, when this lake kept them all (:meth:`keep_written`); else None."""
        kept = self._kept
        return kept.rows(name, urls, fields) if kept is not None else None

    def take_footers(self, urls: Collection[str]) -> dict[str, Footer]:
        """The writer's footers of ``urls`` (those :meth:`write_files` wrote), handed over
        to their commit (``lake.datafiles.add_files``) and no longer kept."""
        with self._footers_lock:
            return {u: f for u in urls if (f := self._footers.pop(u, None)) is not None}

    def commit_files(
        self,
        files: Mapping[str, Sequence[str]],
        segments: list[SegmentDone],
        properties: dict[str, str],
        *,
        past_retention: dict[str, int] | None = None,
        expiring: dict[str, list[str]] | None = None,
    ) -> None:
        """Register written data files in their tables and mark ``segments`` done: one
        catalog transaction, all or nothing. Storage that fails before the transaction
        (making a table, writing metadata) is a :class:`~advertisex.errors.StorageError`.

        ``past_retention``: the rows of files of day partitions older than their table's
        retention are counted in it by table. Those files are left out and deleted, as
        retention would at once (a replay's: the marts counted their rows when they were
        first processed) — or, with ``expiring``, committed and listed there, for
        :meth:`expire_committed` once the marts counted their rows."""
        from advertisex.lake.datafiles import add_files
        from advertisex.lake.history import remember_appended

        self.check_writable()
        footers = self.take_footers([url for paths in files.values() for url in paths])
        with storage_errors(self.settings.warehouse_uri):
            tables = {name: self.table(name) for name, paths in files.items() if paths}
            doomed: list[str] = []
            if past_retention is not None:
                files = dict(files)
                for name, table in list(tables.items()):
                    expired = _past_retention(self.settings, name, table, files[name], footers)
                    if expired:
                        past_retention[name] = past_retention.get(name, 0) + sum(expired.values())
                    if expired and expiring is not None:
                        expiring.setdefault(name, []).extend(expired)
                    elif expired:
                        files[name] = [url for url in files[name] if url not in expired]
                        doomed.extend(expired)
                    if not files[name]:
                        del tables[name]
            added = {}
            with self.catalog.atomic(segments):
                for name, table in tables.items():
                    added[name] = add_files(table, list(files[name]), properties, footers)
        for name, table in tables.items():  # published: their snapshots are the tables' now
            remember_appended(table, added[name])
        if doomed:  # nobody's: the commit went without them
            self.remove_files({"past retention": doomed})
        self.refresh()
        self._thin(list(tables))

    def expire_committed(self, expiring: Mapping[str, Sequence[str]]) -> int:
        """Expire the committed data files ``expiring`` (:meth:`commit_files`) of days past
        their table's retention as ``maintain`` would (archived first, where configured),
        retried on fresh metadata after a lost race; rows expired. Those a concurrent
        ``maintain`` expired or compacted meanwhile are its: left to it."""
        from pyiceberg.exceptions import CommitFailedException, ValidationException

        from advertisex.lake.retention import expire_partitions
        from advertisex.util.timeutil import utcnow

        rows = 0
        for name, urls in expiring.items():
            for attempt in range(3):
                try:
                    with storage_errors(self.settings.warehouse_uri):
                        table = self.table(name)
                        now = utcnow()
                        rows += expire_partitions(
                            table, name, self.settings, now, among=set(urls)
                        ).rows
                    break
                except (CommitFailedException, ValidationException, CommitConflictError):
                    self.refresh()  # another writer committed first: again on its metadata
                    if attempt == 2:
                        log.warning("rows of days past retention of %s left to maintain", name)
        self.refresh()
        return rows

    def _thin(self, names: list[str]) -> None:
        """Every ``maintenance.expire_every_commits`` commits of a table, expire (in its
        metadata) the snapshots maintenance would (``lake.expiry.thin``)."""
        every = self.settings.maintenance.expire_every_commits
        if not every:
            return
        due = []
        for name in names:
            self._unthinned[name] = self._unthinned.get(name, 0) + 1
            if self._unthinned[name] >= every:
                due.append(name)
        if not due:
            return
        from advertisex.lake.expiry import thin
        from advertisex.util.timeutil import utcnow

        followed, now = self.followed(), utcnow()
        for name in due:
            self._unthinned[name] = 0
            if thin(self.table(name), self.settings, now, followed.get(name, frozenset())):
                self._tables.pop(name, None)

    # ------------------------------------------------------------------ reads
    def data_files(self, name: str) -> list[str]:
        """Local paths (or URLs) of the Parquet files making up the current snapshot."""
        return self.data_files_of([name])[name]

    def data_files_of(self, names: list[str]) -> dict[str, list[str]]:
        """:meth:`data_files` of several tables, as of one committed state where the
        catalog allows (``lake.listing``: a SQLite catalog over a local warehouse)."""
        listed = self.listed_files(names)
        if listed is not None:
            return listed
        return {name: self._planned_files(name) for name in names}

    def listed_files(self, names: list[str]) -> dict[str, list[str]] | None:
        """:meth:`data_files_of` where the catalog allows it without pyiceberg (a SQLite
        catalog over a local warehouse: ``lake.listing``), else None."""
        self.check_home()
        return current_files(self.settings.catalog_uri, self.settings.lake.catalog_name, names)

    def _planned_files(self, name: str) -> list[str]:
        """The current snapshot's files as pyiceberg plans them, on any catalog and storage
        (planned once per version of the table)."""
        table = self.table(name)
        if table.current_snapshot() is None:
            return []
        known = self._files.get(name)
        if known is not None and known[0] == table.metadata_location:
            return list(known[1])
        files = []
        for task in table.scan().plan_files():
            if task.delete_files:
                raise LakeError(f"{name} has delete files; read it through pyiceberg instead")
            files.append(_local(task.file.file_path))
        self._files[name] = (table.metadata_location, files)
        return list(files)

    def read(self, name: str, row_filter: Any = None, fields: tuple[str, ...] = ("*",)) -> pa.Table:
        """Read (part of) a table into Arrow through pyiceberg's scan."""
        from pyiceberg.expressions import AlwaysTrue

        from advertisex.model.schemas import TABLES

        table = self.table(name)
        if table.current_snapshot() is None:
            spec = TABLES[name]
            schema = spec.schema if fields == ("*",) else spec.projected(fields)
            return schema.empty_table()
        with _files_still_there(name, self):
            scan = table.scan(row_filter=row_filter or AlwaysTrue(), selected_fields=fields)
            return scan.to_arrow()

    def read_planned(self, name: str, row_filter: Any, fields: tuple[str, ...]) -> PlannedRead:
        """What :meth:`read` reads, planned once: at most how many rows (the planned files'
        record counts), then read whole or a record batch at a time."""
        table = self.table(name)
        if table.current_snapshot() is None:
            return PlannedRead(name, 0, None, [])
        scan = table.scan(row_filter=row_filter, selected_fields=fields)
        with _files_still_there(name):  # a manifest list of a snapshot expired meanwhile
            tasks = list(scan.plan_files())
        return self._scanned_read(name, scan, tasks, fields, _unfiltered(row_filter))

    def _scanned_read(
        self, name: str, scan: Any, tasks: list[Any], fields: tuple[str, ...], whole: bool
    ) -> PlannedRead:
        """A read of ``tasks`` by ``scan``'s reader; one through a row filter, of files
        without deletes, sifted as Parquet by that filter (:meth:`PlannedRead.sift`)."""
        from pyiceberg.io.pyarrow import ArrowScan

        reader = ArrowScan(
            scan.table_metadata, scan.io, scan.projection(), scan.row_filter, scan.case_sensitive
        )
        planned = self._planned_read(name, reader, tasks, fields, whole)
        if not planned.whole and not any(task.delete_files for task in tasks):
            planned.sift(reader, fields, self.settings.scale)
        return planned

    def read_days(
        self, name: str, first: date, last: date, fields: tuple[str, ...]
    ) -> dict[date, PlannedRead]:
        """The rows of each day from ``first`` to ``last`` (UTC, by the table's day
        partition column), planned once for them all: a day's read holds its partition's
        files only, read whole (as Parquet where they have no deletes). Days without a
        file are left out. Planned a day at a time, a read of thousands of days (the
        dedupe horizons of a batch whose events span decades) took a plan of the
        manifests each, ≈ 2.5 ms a day; here a day of no files costs nothing."""
        planned = self._plan_days(name, first, last, fields)
        if planned is None:
            return {}
        reader, by_day = planned
        if by_day is None:  # a file written before the day partition: days by filter
            days = (first + timedelta(days=k) for k in range((last - first).days + 1))
            reads = (
                (day, self.read_planned(name, _between(name, day, day), fields)) for day in days
            )
            return {day: read for day, read in reads if read.rows}
        return {
            day: self._planned_read(name, reader, day_tasks, fields, True)
            for day, day_tasks in sorted(by_day.items())
        }

    def read_on_days(
        self,
        name: str,
        days: Collection[date],
        fields: tuple[str, ...],
        within: Sequence[tuple[int, int]] = (),
    ) -> PlannedRead:
        """The files of ``days``' partitions (UTC, the table's day partition column) read
        whole, planned once over the days' span: their rows of other times are the
        caller's to leave out. ``within``: sorted time ranges (µs since the epoch, half
        open) the rows wanted are in; a file whose column bounds meet none is left out, as
        pyiceberg's plan would. A filter of many time ranges given to pyiceberg is weighed,
        every clause of it, against every data file — in the plan and again as each file
        is read (a late batch's 60 hours apart over 200 days: 22 s of its marts' 28 s)."""
        if not days:
            return PlannedRead(name, 0, None, [])
        first, last = min(days), max(days)
        planned = self._plan_days(name, first, last, fields, kept=True)
        if planned is None:
            return PlannedRead(name, 0, None, [])
        reader, by_day = planned
        if by_day is None:  # a file written before the day partition: the span, filtered
            return self.read_planned(name, _between(name, first, last), fields)
        tasks = [task for day in sorted(set(days)) for task in by_day.get(day, [])]
        if within:
            tasks = _meeting(self.table(name), name, tasks, within)
        return self._planned_read(name, reader, tasks, fields, True)

    def _plan_days(
        self, name: str, first: date, last: date, fields: tuple[str, ...], kept: bool = False
    ) -> tuple[Any, dict[date, list[Any]] | None] | None:
        """The scan tasks of the days from ``first`` to ``last``, planned once, by the day
        their file's partition holds, with the reader of that scan; tasks None when a file
        has no day partition (written before the spec had one); None for a table with no
        rows yet. ``kept``: from a plan kept for the table's version (:meth:`_day_tasks`)."""
        from pyiceberg.io.pyarrow import ArrowScan
        from pyiceberg.transforms import DayTransform

        from advertisex.model.schemas import TABLES

        column = TABLES[name].partition_by_day
        if column is None:
            raise LakeError(f"{name} is not partitioned by day")
        table = self.table(name)
        if table.current_snapshot() is None:
            return None
        scan = table.scan(row_filter=_between(name, first, last), selected_fields=fields)
        if kept:
            tasks = self._day_tasks(name, table, first, last)
        else:
            with _files_still_there(name):
                tasks = list(scan.plan_files())
        reader = ArrowScan(
            scan.table_metadata, scan.io, scan.projection(), scan.row_filter, scan.case_sensitive
        )
        source_id = table.schema().find_field(column).field_id
        specs = table.specs()
        by_day: dict[date, list[Any]] = {}
        for task in tasks:
            position = next(
                (
                    i
                    for i, field in enumerate(specs[task.file.spec_id].fields)
                    if field.source_id == source_id and isinstance(field.transform, DayTransform)
                ),
                None,
            )
            if position is None:
                return reader, None
            day = EPOCH_DAY + timedelta(days=task.file.partition[position])
            if first <= day <= last:  # a kept plan may hold more days
                by_day.setdefault(day, []).append(task)
        return reader, by_day

    def _day_tasks(self, name: str, table: Any, first: date, last: date) -> list[Any]:
        """The scan tasks of the files of the days from ``first`` to ``last`` (at least) of
        ``table``'s current version: a plan kept for this version whose days hold these
        is used again (a read picks its files by their bounds), else the days are planned
        (pyiceberg skips the manifests of other days) and the plan kept."""
        version = table.metadata_location
        kept = [k for k in self._tasks.get(name, []) if k[0] == version]  # older versions: gone
        for _, planned_first, planned_last, tasks in kept:
            if planned_first <= first and last <= planned_last:
                return tasks
        with _files_still_there(name):  # a manifest list of a snapshot expired meanwhile
            tasks = list(table.scan(row_filter=_between(name, first, last)).plan_files())
        self._tasks[name] = [*kept[-3:], (version, first, last, tasks)]
        return tasks

    def read_within(
        self, name: str, within: Sequence[tuple[int, int]], fields: tuple[str, ...]
    ) -> PlannedRead:
        """The rows of ``name`` whose day partition column (UTC event time) lies in one of
        ``within`` (sorted, half-open ranges of µs since the epoch): what :meth:`read_planned`
        of that filter reads, its files picked by their bounds from the table's files
        planned once per version (:meth:`_day_tasks`) rather than by a plan of their own."""
        table = self.table(name)
        if table.current_snapshot() is None or not within:
            return PlannedRead(name, 0, None, [])
        scan = table.scan(row_filter=_within(name, within), selected_fields=fields)
        first = from_micros(within[0][0]).date()
        last = from_micros(within[-1][1] - 1).date()
        tasks = _meeting(table, name, self._day_tasks(name, table, first, last), within)
        planned = self._scanned_read(name, scan, tasks, fields, False)
        planned.within = within
        return planned

    def _planned_read(
        self, name: str, reader: Any, tasks: list[Any], fields: tuple[str, ...], whole: bool
    ) -> PlannedRead:
        """A read of ``tasks``; ``whole``: the scan's filter keeps every row of their files
        (then, without delete files, they are read as Parquet: :attr:`PlannedRead.direct`)."""
        planned = PlannedRead(name, sum(task.file.record_count for task in tasks), reader, tasks)
        planned.lake = self
        if whole and not any(task.delete_files for task in tasks):
            planned.direct = (fields, self.settings.scale)
            if self._kept is not None:
                paths = [task.file.file_path for task in tasks]
                planned.kept = functools.partial(self._kept.rows, name, paths, fields)
        return planned

    def done_segments(
        self,
        source: str | None = None,
        *,
        between: tuple[str, str] | None = None,
        among: Collection[str] | None = None,
    ) -> set[str]:
        """Names of the committed landing segments (of ``source``, with names in the
        half-open range ``between``, or ``among`` the given names)."""
        return self.catalog.ledger.names(source, between=between, among=among)

    def done_in(self, landing: LandingZone, sources: Iterable[str] | None = None) -> set[str]:
        """Names of the committed segments of ``sources`` that ``landing`` can still hold:
        each source's in the runs of landing days it holds (``held_ranges``: from its oldest
        landing day on, a day copied back from the archive apart). The ledger keeps a mark for every
        segment ever committed — millions after months of one-second collector segments —
        and loading them all made every run start slower as the lake aged (a million
        marks: 1.7 s of CPU and 200 MB); retention deleted the older ones' segments.
        Read as :attr:`ledger_reads` reads them: a new lake's first ``process`` does not
        make its catalog for that (≈ 0.05-0.1 s) before its first piece starts."""
        from advertisex.landing.detect import SOURCES

        ledger = self.ledger_reads
        done: set[str] = set()
        for source in SOURCES if sources is None else sources:
            for held in landing.held_ranges(source):
                done |= ledger.names(between=held)
        return done

    def fold_retired_marks(self, landing: LandingZone, today: date) -> int:
        """Fold the done marks of each source's landing days before both its oldest landing
        day and :data:`FOLD_AFTER` ago into a row a day (``SegmentLedger.fold``): the ledger
        kept a row for every segment ever committed, ≈ 160 bytes each, for good. Readers see
        the same marks; a day whose segments are copied back from the archive (for a
        replay) reads as done, as before. How many marks were folded."""
        from advertisex.landing.detect import SOURCES
        from advertisex.landing.zone import landing_day

        folded = 0
        settled = today - FOLD_AFTER
        for source in SOURCES:
            bound = settled
            low = landing.lowest_name(source)  # None: it holds nothing
            if low is not None:
                oldest = landing_day(low)
                if oldest is None:
                    continue  # it holds names that are not of a landing day: left as they are
                bound = min(bound, oldest)
            for day in self.ledger.unfolded_days_before(source, bound.isoformat()):
                folded += self.ledger.fold(source, day)
        return folded

    def segment_marks(
        self, *, between: tuple[str, str] | None = None, among: Collection[str] | None = None
    ) -> dict[str, SegmentDone]:
        """Committed segment → its checkpoint row (batch, records, bytes, commit time)."""
        return self.catalog.ledger.marks(between=between, among=among)

    def marks_of_batches(self, batch_ids: Collection[str]) -> dict[str, SegmentDone]:
        """Committed segment → its checkpoint row, for every segment of the batches
        ``batch_ids``."""
        return self.catalog.ledger.marks_of_batches(batch_ids)

    @property
    def ledger(self) -> SegmentLedger:
        """The committed-segment marks, for readers that need more than names or a few
        marks: Arrow columns, counts per range, the epoch that says marks were withdrawn."""
        return self.catalog.ledger

    @property
    def ledger_reads(self) -> SqliteMarks | SegmentLedger:
        """:attr:`ledger` for a look at the landing zone (the epoch, Arrow columns, counts
        per range): on a SQLite catalog, read with sqlite3 alone (``lake.marks``), so that
        ``advertisex status`` loads neither pyiceberg nor SQLAlchemy; else the ledger."""
        self.check_home()
        database = _sqlite_file(self.settings.catalog_uri)
        if database is not None:
            from advertisex.lake.marks import SqliteMarks

            return SqliteMarks(database)
        return self.ledger

    def snapshots(self, name: str) -> Iterator[Any]:
        yield from self.table(name).snapshots()


def _evolve(table: Table, spec: TableSpec) -> Table:
    """Add columns a newer AdvertiseX defines to a table an older one created.

    Iceberg schema evolution by name: existing data files read the new columns as null,
    so a lake created before (say) enrichment columns existed keeps taking appends.
    """
    have = {field.name for field in table.schema().fields}
    missing = [f for f in spec.schema if f.name not in have]
    if not missing:
        return table
    import pyarrow as pa

    with table.update_schema() as update:
        update.union_by_name(pa.schema([f.with_nullable(True) for f in missing]))
    return table


def upkeep_properties(settings: Settings) -> dict[str, str]:
    """Iceberg table properties that keep commits cheap however many came before:
    merge-append of manifests, and old metadata versions deleted as tables commit."""
    upkeep = settings.maintenance
    return {
        "commit.manifest-merge.enabled": str(upkeep.manifest_merge).lower(),
        "commit.manifest.min-count-to-merge": str(upkeep.manifest_min_count_to_merge),
        "commit.manifest.target-size-bytes": str(upkeep.manifest_target_bytes),
        "write.metadata.delete-after-commit.enabled": "true",
        "write.metadata.previous-versions-max": str(upkeep.metadata_versions),
        "write.target-file-size-bytes": str(upkeep.target_file_bytes),
        # Maintenance and the processor commit side by side: a lost race is retried on
        # fresh metadata (pyiceberg rebuilds the snapshot) rather than failed.
        "commit.retry.num-retries": "10",
    }


def table_properties(settings: Settings, spec: TableSpec) -> dict[str, str]:
    """The Iceberg properties every AdvertiseX table keeps: :func:`upkeep_properties`, and
    no metrics for the columns whose data files carry no statistics (``TableSpec.statistics``):
    pyiceberg would otherwise warn of each missing one and drop its null counts."""
    return {
        **upkeep_properties(settings),
        **{f"write.metadata.metrics.column.{name}": "none" for name in spec.without_statistics()},
        # Whole batch ids, not Iceberg's default 16 characters: a file's bounds then say
        # which batches it can hold (lake.damage.batch_bounds). Set on older tables too,
        # which kept none.
        **(
            {"write.metadata.metrics.column.batch_id": "full"}
            if "batch_id" in spec.schema.names
            else {}
        ),
        **{f"write.metadata.metrics.column.{name}": "full" for name in spec.whole_bounds},
    }


def _with_properties(table: Table, wanted: dict[str, str]) -> Table:
    """``table`` with ``wanted`` properties set (a table created by an older AdvertiseX)."""
    from pyiceberg.exceptions import CommitFailedException

    if all(table.properties.get(k) == v for k, v in wanted.items()):
        return table
    try:
        with table.transaction() as tx:
            tx.set_properties(properties=dict(wanted))
    except CommitFailedException:  # another process changed it first; next open tries again
        pass
    return table


def _identity() -> Any:
    from pyiceberg.transforms import IdentityTransform

    return IdentityTransform()


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and order columns as the table schema has them (types cast where they differ;
    a column dictionary-encoded over the table's own type stays so: ``TableSpec.few_values``)."""
    import pyarrow as pa

    data = data.select(schema.names)
    target = pa.schema(
        data.schema.field(f.name) if _encoded(data.schema.field(f.name).type, f.type) else f
        for f in schema
    )
    return data.cast(target) if data.schema != target else data


def _encoded(given: pa.DataType, wanted: pa.DataType) -> bool:
    """Whether ``given`` is ``wanted`` with codes for its texts: a dictionary of it, or a
    map whose keys or values are (``runners.batch.gather_maps``)."""
    import pyarrow as pa

    if pa.types.is_map(given) and pa.types.is_map(wanted) and given != wanted:
        return all(
            g == w or (pa.types.is_dictionary(g) and g.value_type == w)
            for g, w in ((given.key_type, wanted.key_type), (given.item_type, wanted.item_type))
        )
    return pa.types.is_dictionary(given) and given.value_type == wanted


def _local(path: str) -> str:
    return path.removeprefix("file://") if path.startswith("file://") else path


def _made_at(table: str, metadata_location: str) -> Path:
    """The data directory a lake was made in, from where it records ``table``'s metadata
    (``<data dir>/warehouse/<namespace>/<table>/metadata/…``)."""
    warehouse = recorded_warehouse(table, metadata_location)
    return Path(warehouse or _local(metadata_location)).parent


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _moved(settings: Settings, made_at: Path) -> Exception:
    """The error for a lake made in ``made_at`` whose files are no longer there."""
    from advertisex.errors import LakeMovedError

    here = settings.data_dir.absolute()
    return LakeMovedError(
        f"the lake in {here} was made in {made_at} and moved: its tables are recorded "
        "there (Iceberg keeps where every file is), and their files are not",
        hint=f"move it back to {made_at}, or run advertisex relocate here to make this "
        "folder its home",
    )


def _sqlite_file(catalog_uri: str) -> str | None:
    """The database file of a SQLite catalog on this machine's disk (``sqlite:///PATH``);
    None for any other catalog, an in-memory one among them."""
    if not catalog_uri.startswith("sqlite:///"):
        return None
    database = catalog_uri.removeprefix("sqlite:///")
    if database in ("", ":memory:") or database.startswith("file:") or "?" in database:
        return None
    return database


def _check_catalog_kept(settings: Settings) -> None:
    """Refuse a data directory whose warehouse holds tables but whose catalog database is
    gone (deleted, left out of a copy or a restore). The catalog names each table's current
    metadata and every landing file processed: opened anew it was made empty, and the
    next ``process`` took every landed file again into new tables beside the old ones
    (whose files ``maintain`` then deleted as orphans) — rows lost for good where landing
    retention had deleted their files."""
    from advertisex.errors import CatalogMissingError

    catalog = Path(settings.catalog_uri.removeprefix("sqlite:///"))
    if catalog.exists():
        return
    warehouse = Path(settings.warehouse_uri.removeprefix("file://"))
    held = next(warehouse.glob("*/*/metadata/*.metadata.json"), None)
    if held is None:
        return
    here = settings.data_dir.absolute()
    raise CatalogMissingError(
        f"the lake in {here} has tables ({'.'.join(held.parent.parent.relative_to(warehouse).parts)}, …) "
        f"but no catalog: {catalog} is gone, and it records each table's current state "
        "and which landing files were processed",
        hint=f"restore {catalog.name} from a backup of the lake; or, to rebuild every table "
        f"from the landing zone (only what landing retention kept), move {warehouse} "
        "aside and run advertisex process",
    )


def _copied(settings: Settings, made_at: Path) -> AdvertiseXError:
    """The error for changing a copy of the lake made in ``made_at``, which is still there."""
    from advertisex.errors import LakeCopiedError

    here = settings.data_dir.absolute()
    return LakeCopiedError(
        f"the lake in {here} is a copy of the one in {made_at}, and its tables are recorded "
        f"there (Iceberg keeps where every file is): writing through the copy would change "
        f"{made_at}'s folders, so the copy is read-only",
        hint=f"query and report the copy as it is, work in {made_at}, or run advertisex "
        f"relocate here to make the copy a lake of its own ({made_at} stays as it is)",
    )


def _catalog_unavailable(uri: str, error: Exception) -> Exception:
    """Opening the catalog failed: a one-line TransientError naming it (password hidden)
    for the database or file system refusing; anything else is raised as it was."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from advertisex.errors import TransientError

    if not isinstance(error, DBAPIError | ArgumentError | OSError):
        return error
    try:
        shown = make_url(uri).render_as_string(hide_password=True)
    except ArgumentError:
        shown = uri.split("@")[-1]
    reason = getattr(error, "orig", None) or error
    first = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    return TransientError(
        f"cannot open the Iceberg catalog {shown}: {first}",
        hint="check lake.catalog_uri (`advertisex config` shows it) and that its database "
        "is running and reachable",
    )


@contextlib.contextmanager
def storage_errors(
    where: str,
    what: str = "the lake",
    outcome: str = "nothing of this batch was committed",
    then: str = "it resumes with what is pending",
) -> Iterator[None]:
    """OS errors of the lake's storage as the one-line :class:`StorageError`: cannot write
    ``what`` under ``where`` (the reason); ``outcome``; fix it and rerun: ``then``."""
    from advertisex.errors import StorageError
    from advertisex.util.storage import os_reason

    try:
        yield
    except OSError as error:
        raise StorageError(
            f"cannot write {what} under {where}: {os_reason(error)}; {outcome}",
            hint=f"free space or fix the storage, then run the same command again: {then}",
        ) from error


@contextlib.contextmanager
def _files_still_there(name: str, lake: Lake | None = None) -> Iterator[None]:
    """Reading ``name``: a data file gone means maintenance (another process) expired the
    snapshot this metadata names and deleted its files — a conflict, which fresh metadata
    resolves by reading the same rows from the files now live — unless ``lake``'s fresh
    metadata still names a file its storage lost (``lake.damage``), which no retry finds."""
    try:
        yield
    except FileNotFoundError as error:
        if lake is not None:
            from advertisex.lake.damage import explained

            damage = explained(lake, error, [name])
            if damage is not None:
                raise damage from error
        raise CommitConflictError(
            f"{name} changed while it was read (a file of an expired snapshot is gone)",
            hint="read it again: fresh metadata names the files now live",
        ) from error


# Rows of a record batch read as Parquet: what Arrow's scanner gives pyiceberg's reads.
_BATCH_ROWS = 128 << 10


def _closing(parquet: Any, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``batches``, the file of ``parquet`` closed once they are read (or let go)."""
    try:
        yield from batches
    finally:
        parquet.close()


def _meeting(
    table: Any, name: str, tasks: list[Any], within: Sequence[tuple[int, int]]
) -> list[Any]:
    """The ``tasks`` whose file's bounds of ``name``'s day partition column meet a range of
    ``within`` (sorted, half-open, µs since the epoch), or that have no bounds of it."""
    import bisect

    from pyiceberg.conversions import from_bytes

    from advertisex.model.schemas import TABLES

    field = table.schema().find_field(TABLES[name].partition_by_day)
    ends = [hi for _, hi in within]
    kept = []
    for task in tasks:
        lower = (task.file.lower_bounds or {}).get(field.field_id)
        upper = (task.file.upper_bounds or {}).get(field.field_id)
        if lower is None or upper is None:
            kept.append(task)
            continue
        low, high = from_bytes(field.field_type, lower), from_bytes(field.field_type, upper)
        if not isinstance(low, int) or not isinstance(high, int):  # not µs: not weighed
            kept.append(task)
            continue
        k = bisect.bisect_right(ends, low)  # the first range that ends after the file's lowest
        if k < len(within) and within[k][0] <= high:
            kept.append(task)
    return kept


def _within(name: str, within: Sequence[tuple[int, int]]) -> Any:
    """The row filter of the half-open µs ranges ``within`` of ``name``'s day partition
    column."""
    from advertisex.model.schemas import TABLES

    column = TABLES[name].partition_by_day
    assert column is not None  # (read_within is only asked of day-partitioned tables)
    return ranges_filter(column, [(from_micros(lo), from_micros(hi)) for lo, hi in within])


def ranges_filter(column: str, ranges: Sequence[tuple[date, date]]) -> Any:
    """The pyiceberg row filter of the rows whose ``column`` lies in one of the half-open
    ``ranges`` of days or times (none: no row). The ranges are joined as a balanced tree: a long chain of
    ``Or`` made pyiceberg's visitors recurse once per range."""
    from pyiceberg.expressions import AlwaysFalse, And, GreaterThanOrEqual, LessThan, Or

    def balanced(parts: list[Any]) -> Any:
        if len(parts) == 1:
            return parts[0]
        middle = len(parts) // 2
        return Or(balanced(parts[:middle]), balanced(parts[middle:]))

    clauses = [
        And(
            GreaterThanOrEqual(column, lo.isoformat()),  # type: ignore[call-arg,misc]
            LessThan(column, hi.isoformat()),  # type: ignore[call-arg,misc]
        )
        for lo, hi in ranges
    ]
    return balanced(clauses) if clauses else AlwaysFalse()


def _between(name: str, first: date, last: date) -> Any:
    """The row filter of the days from ``first`` to ``last`` (UTC) of ``name``'s day
    partition column."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    from advertisex.model.schemas import TABLES

    column = TABLES[name].partition_by_day
    start = datetime.combine(first, time(), UTC)
    since = GreaterThanOrEqual(column, start.isoformat())  # type: ignore[call-arg,misc]
    if last >= date.max:  # the calendar's last day: its end is no datetime
        return since
    end = datetime.combine(last, time(), UTC) + DAY
    return And(since, LessThan(column, end.isoformat()))  # type: ignore[call-arg,misc]


def _unfiltered(row_filter: Any) -> bool:
    """Whether a scan's ``row_filter`` keeps every row of the files it plans."""
    from pyiceberg.expressions import AlwaysTrue

    return row_filter is None or isinstance(row_filter, AlwaysTrue)


class PlannedRead:
    """A read of a table planned once (:meth:`Lake.read_planned`)."""

    def __init__(self, name: str, rows: int, reader: Any, tasks: list[Any]) -> None:
        self.name, self.rows, self._reader, self._tasks = name, rows, reader, tasks
        # The files' rows as the lake kept them when it wrote them (None: not all kept).
        self.kept: Callable[[], pa.Table | None] = lambda: None
        # (fields, storage settings) when the scan reads every row of its files (no row
        # filter, no deletes): :meth:`batches` then reads them as Parquet.
        self.direct: tuple[tuple[str, ...], ScaleSettings | None] | None = None
        # With :attr:`direct`, the scan's row filter as an Arrow expression when it does not
        # keep every row (no deletes either): its files are read as Parquet through Arrow's
        # dataset scanner, which skips row groups by their statistics and filters the rows,
        # as pyiceberg's scan does after working out each file's projection (≈ 3–5 ms a file:
        # a follower's marts update read the hour's hundreds of micro-batch files so, for
        # each table, 2.5 s growing to 35 s in 20 minutes at 2,000 events/s).
        self.sieve: pc.Expression | None = None
        # With a sieve of time ranges alone (Lake.read_within): the ranges of the day
        # partition column, in µs since the epoch, so kept rows all inside one are not sifted.
        self.within: Sequence[tuple[int, int]] | None = None
        self._sieve_fields: tuple[str, ...] = ()  # the columns it reads
        self.lake: Lake | None = None  # its storage may lose a file: _files_still_there

    def sift(self, reader: Any, fields: tuple[str, ...], scale: ScaleSettings | None) -> None:
        """Read the files as Parquet through the scan's row filter (:attr:`sieve`)."""
        from pyiceberg.expressions.visitors import extract_field_ids
        from pyiceberg.io.pyarrow import expression_to_pyarrow

        bound = reader._bound_row_filter
        schema = reader._table_metadata.schema()
        self.sieve = expression_to_pyarrow(bound)
        self._sieve_fields = tuple(schema.find_column_name(i) for i in extract_field_ids(bound))
        self.direct = (fields, scale)

    @property
    def files(self) -> list[Any]:
        """The data files read (manifest ``DataFile``s)."""
        return [task.file for task in self._tasks]

    @property
    def whole(self) -> bool:
        """Whether the read holds every row of its data files (no row filter, no deletes)."""
        return self.direct is not None and self.sieve is None

    def table(self) -> pa.Table:
        """Every row at once (the files read side by side, or their rows as this process
        wrote them: :meth:`Lake.keep_written`)."""
        kept = self.kept()
        if kept is not None:
            return kept
        with _files_still_there(self.name, self.lake):
            whole = self._whole_as_parquet()
            return whole if whole is not None else self._reader.to_table(self._tasks)

    def _whole_as_parquet(self) -> pa.Table | None:
        """Every file read as Parquet (:meth:`_read_as_parquet`), or None if one cannot be:
        pyiceberg's scan works out each file's projection first, ≈ 9 ms a file (the marts'
        update of a late batch over 200 days read 200 small files so, for each table)."""
        if self.direct is None or not self._tasks:
            return None
        import pyarrow as pa

        parts = []
        for task in self._tasks:
            kept = self._kept_rows(task)
            if kept is not None:
                parts.append(kept)
                continue
            parquet = self._parquet_of(task)
            if parquet is None:
                return None
            with contextlib.closing(parquet):
                if self.sieve is None:
                    parts.append(parquet.read(columns=list(self.direct[0])))
                else:
                    parts.append(self._sifted(parquet, task, whole=True))
        try:
            return pa.concat_tables(parts, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # files of types apart: pyiceberg's scan
            return None

    def batches(self) -> Iterator[pa.RecordBatch]:
        """A record batch at a time (≈ 128 k rows), a file after another: read as Parquet
        where every row is read (:meth:`_read_as_parquet`), else by pyiceberg's scan.
        pyiceberg's public ``to_record_batches`` reads all its tasks at once and each file
        whole (a compacted file holds millions of rows); its per-task generator streams a
        file's batches (pyiceberg is pinned below 0.13)."""
        with _files_still_there(self.name, self.lake):
            for task in self._tasks:
                yield from self._read_as_parquet(task) or self._scanned(task)

    def _scanned(self, task: Any) -> Iterator[pa.RecordBatch]:
        from pyiceberg.io.pyarrow import _read_all_delete_files

        deletes = _read_all_delete_files(self._reader._io, [task])
        yield from self._reader._record_batches_from_scan_tasks_and_deletes([task], deletes)

    def _read_as_parquet(self, task: Any) -> Iterator[pa.RecordBatch] | None:
        """A file's batches read as Parquet, by column name (as the marts' update and the
        dedupe read added files), when every row is read (:attr:`direct`) and the file holds
        every field asked for as a plain column; None otherwise (a file written before a
        field was added, a nested field: pyiceberg's scan fills and names them). Read by
        pyiceberg's scan, 5.4 M impressions' eight columns took 1.25-1.71 s of CPU against
        0.83-1.01 s as Parquet (its projection of each batch); a backlog's marts build
        reads the impressions three times."""
        kept = self._kept_rows(task)
        if kept is not None:
            return iter(kept.to_batches(max_chunksize=_BATCH_ROWS))
        parquet = self._parquet_of(task)
        if parquet is None:
            return None
        assert self.direct is not None
        fields = list(self.direct[0])
        if self.sieve is not None:
            return _closing(parquet, self._sifted(parquet, task))
        return _closing(parquet, parquet.iter_batches(batch_size=_BATCH_ROWS, columns=fields))

    def _kept_rows(self, task: Any) -> pa.Table | None:
        """The rows of ``task``'s file this read takes (through :attr:`sieve`), from those
        this process kept as it wrote the file (:meth:`Lake.keep_written`); None where they
        were not kept. A marts update right after a batch read the batch's files back
        through its slices (the hours it recomputes), beside the rows kept of them: a
        backlog's batch into a lake that held the marts already decoded its million
        impressions again, and held them twice."""
        if self.direct is None or self.lake is None:
            return None
        fields = self.direct[0]
        wanted = list(dict.fromkeys((*fields, *self._sieve_fields)))
        rows = self.lake.written(self.name, [task.file.file_path], wanted)
        if rows is None:
            return None
        if self.sieve is not None and not self._all_within(rows):
            rows = rows.filter(self.sieve)
        return rows.select(list(fields))

    def _all_within(self, rows: pa.Table) -> bool:
        """Whether every one of ``rows`` lies in one of :attr:`within`'s ranges: a day's
        file of a batch whose hours are all recomputed is taken as it was kept, not copied
        through the sieve (the 2 M set's impressions ≈ 0.15 s)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from advertisex.model.schemas import TABLES

        if self.within is None or not rows.num_rows:
            return False
        column = TABLES[self.name].partition_by_day
        if column is None or column not in rows.column_names:
            return False
        bounds = pc.min_max(rows.column(column).cast(pa.timestamp("us", "UTC")).cast(pa.int64()))
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is None or rows.column(column).null_count:
            return False
        return any(lo <= low and high < hi for lo, hi in self.within)

    def _sifted(
        self, parquet: pq.ParquetFile, task: Any, whole: bool = False
    ) -> Iterator[pa.RecordBatch] | pa.Table:
        """The rows of ``task``'s file (open as ``parquet``) that pass :attr:`sieve`: a record
        batch at a time, or (``whole``) as one table."""
        import pyarrow.dataset as ds

        from advertisex.util import storage

        assert self.direct is not None
        fields, scale = self.direct
        if parquet.metadata.num_row_groups <= 1:  # a micro-batch's file: nothing to skip
            # (Arrow's scanner costs ≈ 3 ms a file of its own, as much as pyiceberg's.)
            columns = list(dict.fromkeys((*fields, *self._sieve_fields)))
            rows = parquet.read(columns=columns).filter(self.sieve).select(list(fields))
            batches = rows.to_batches(max_chunksize=_BATCH_ROWS)
            return rows if whole else (batch for batch in batches if batch.num_rows)
        filesystem, path = storage.resolve(task.file.file_path, scale)
        fragment = ds.ParquetFileFormat().make_fragment(path, filesystem=filesystem)
        scanner = ds.Scanner.from_fragment(
            fragment, columns=list(fields), filter=self.sieve, batch_size=_BATCH_ROWS
        )
        if whole:
            return scanner.to_table()
        return (batch for batch in scanner.to_batches() if batch.num_rows)

    def _parquet_of(self, task: Any) -> pq.ParquetFile | None:
        """``task``'s file open as Parquet when it can be read so (see
        :meth:`_read_as_parquet`), else None."""
        if self.direct is None:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        from advertisex.util import storage

        fields, scale = self.direct
        filesystem, path = storage.resolve(task.file.file_path, scale)
        parquet = pq.ParquetFile(path, filesystem=filesystem)
        schema = parquet.schema_arrow
        names = set(schema.names)
        wanted = (*fields, *self._sieve_fields)
        if any(f not in names or pa.types.is_nested(schema.field(f).type) for f in wanted):
            parquet.close()
            return None
        return parquet


def _past_retention(
    settings: Settings, name: str, table: Any, urls: Sequence[str], footers: Mapping[str, Any]
) -> dict[str, int]:
    """The files among ``urls`` whose day partition is older than ``name``'s retention,
    reckoned now (as ``maintain`` would), with their rows."""
    from advertisex.config import retention_days
    from advertisex.lake.datafiles import data_file
    from advertisex.lake.retention import EPOCH as DAY_ZERO
    from advertisex.lake.retention import cutoff
    from advertisex.model.schemas import TABLES
    from advertisex.util.timeutil import utcnow

    days = retention_days(settings, name)
    if days is None or TABLES[name].partition_by_day is None:
        return {}
    oldest = (cutoff(days, utcnow()) - DAY_ZERO).days
    expired = {}
    for url in urls:
        made = data_file(table, table.metadata, url, footers.get(url))
        day = made.partition[0] if made.partition is not None else None
        if day is not None and day < oldest:
            expired[url] = made.record_count
    return expired
