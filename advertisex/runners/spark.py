"""The Spark runner: the runner template's two engine steps, spread over Spark.

``advertisex process --engine spark --master local[2]`` (or ``spark://…``, ``yarn``,
``k8s://…``, or no master under ``spark-submit``). Batches, batch ids, the rules,
unreadable segments, the accounting, ``ops.batches`` and the exactly-once commit are the
template's (:mod:`advertisex.runners.runner`), as for the embedded runner; this class
reads and transforms:

    read:      task numbers ──mapInArrow: each task's share of the segments: read, frame,
               standardize, enrich──► each segment's rows, and the candidates' keys
               by key bucket, to the batch's scratch folder; what was written → driver
    transform: committed data files ──mapInArrow──► their keys by bucket, to scratch
               task numbers ──mapInArrow: each task's share of the buckets, its key
               files read back: find_duplicates──► duplicates → driver
               wave by wave, task numbers + broadcast duplicates ──mapInArrow: each task's
               share of the wave's segments, read back from scratch: quarantine, IVT,
               accepted rows──► Parquet files
    template:  driver: add_files for every table + ops.batches + segment marks, one catalog transaction

Nothing wide passes through the JVM: what one stage hands the next waits as Arrow IPC
files in the batch's scratch folder (under the warehouse, which every executor reaches:
they write the tables' files there too), removed when the batch ends, and the driver
tells each task which files to read. Held in Spark instead (a persisted column of IPC
blobs, a shuffle of key blobs by bucket), every blob was copied from Arrow into Spark's
rows and cache, and back to Arrow for every stage that read it — the clicks' wave of
stage 3 scanned the impressions' blobs again only to filter them out. Only (key,
payload hash, position) goes to the dedupe, as in the embedded dedupe, cut by a stable
hash of the key into buckets: every occurrence of a key, and its committed twin, lands
in one bucket, so each task judges its buckets alone. Each task gets its own share of
the segments or buckets, of about equal weight, so both cores stay busy to the end of
a stage. Executors write the data files into the tables' locations; a crash before the
driver's transaction leaves only unreferenced files (and a scratch folder, removed when
the batch is run again — or, when it runs again under another id because more segments
were pending by then, by the next runner once it is older than the orphan margin), and
the batch is redone from the landing zone. After the batches, mart maintenance runs its
correlation and rollup kernels on the same session (``advertisex.marts.spark``: parts by
user, auction and campaign).

Executors need this package and its dependencies installed (the same wheel as the
driver); see docs/deployment.md.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.config import Settings
from advertisex.errors import SparkUnavailableError
from advertisex.lake.datafiles import WrittenFile
from advertisex.lake.tables import Lake
from advertisex.landing.zone import LandingZone, Segment
from advertisex.model.schemas import SOURCES
from advertisex.runners import spark_tasks as tasks
from advertisex.runners.batch import SourceAccount
from advertisex.runners.committed import DedupeLookup
from advertisex.runners.embedded import weight
from advertisex.runners.hooks import CommitHook
from advertisex.runners.rules import SOURCE_WAVES, BatchRules
from advertisex.runners.runner import Batch, Framed, ProcessReport, Progress, Runner, Transformed
from advertisex.util import storage
from advertisex.util.spark_arrow import collect_arrow, remove_scratch, remove_stale_scratch
from advertisex.util.timeutil import to_micros, utcnow

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from advertisex.marts.maintain import Kernels

# Spark properties the runner sets unless the configuration (scale.spark_conf) does.
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "65536",
    "spark.driver.memory": "2g",
}
BUCKETS_PER_TASK = 4  # dedupe key buckets per task
SCRATCH = "_spark_scratch"  # under the warehouse: stage 1's rows for stage 3, per batch


def spark_session(settings: Settings, master: str | None, verbose: bool = False) -> SparkSession:
    """A Spark session for the processor; ``master=None`` keeps spark-submit's master.

    A ``spark://`` master that does not answer fails at once (Spark itself retries for a
    minute, then leaves a stopped context behind). Unless ``verbose``, what the JVM prints
    goes to :func:`spark_log` instead of the terminal.
    """
    from pyspark.sql import SparkSession

    check_master(master)
    # Local masters start Python workers with this interpreter (and so this package).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("advertisex-process")
    if master:
        builder = builder.master(master)
    for key, value in {**DEFAULT_CONF, **settings.scale.spark_conf}.items():
        builder = builder.config(key, value)
    quiet = contextlib.nullcontext() if verbose else _jvm_output_to(spark_log(settings))
    with quiet:
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN" if verbose else "ERROR")
    return session


def spark_log(settings: Settings) -> Path:
    """Where the Spark driver's own output goes unless ``--verbose``."""
    return settings.data_dir.absolute() / "logs" / "spark.log"


def check_master(master: str | None, timeout: float = 5.0) -> None:
    """Raise :class:`SparkUnavailableError` naming the master when no address of a
    ``spark://host:port[,host:port]`` master accepts a connection (other masters —
    ``local[N]``, ``yarn``, ``k8s://`` — are not probed)."""
    if not master or not master.startswith("spark://"):
        return
    reasons = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host or address, int(port or 7077)), timeout).close()
            return
        except (OSError, ValueError) as error:
            reasons.append(getattr(error, "strerror", None) or str(error) or type(error).__name__)
    raise SparkUnavailableError(
        f"cannot reach the Spark master {master}: {'; '.join(reasons)}",
        hint="check --master (spark://HOST:7077) and that the master runs; "
        "--master local[2] runs Spark inside this process",
    )


# Spark's log is appended to by every run: past this size it becomes ``spark.log.1`` (the
# one before that goes), so months of daily runs keep two logs, not a file that only grows.
SPARK_LOG_KEEP = 8 << 20


def _rotated(path: Path) -> None:
    """Move ``path`` aside to ``<name>.1`` once it holds more than :data:`SPARK_LOG_KEEP`."""
    try:
        if path.stat().st_size > SPARK_LOG_KEEP:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


@contextlib.contextmanager
def _jvm_output_to(path: Path) -> Iterator[None]:
    """Whatever the JVM started inside the block prints (log4j warnings, Java stack
    traces) goes to ``path``: it inherits this process's stdout and stderr, which point
    there while it starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _rotated(path)
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log):
            os.close(fd)


@dataclass
class Prepared(Framed):
    """Stage 1's output: the key files it wrote (:data:`tasks.PREPARED` rows of kind
    keys), the event-time bounds of each table's candidates' key files (µs: the dedupe
    horizon's spans are around them), the scratch folder holding those and each segment's
    standardized rows, and stage 1's job (stage 2 standardizes a segment again from it
    when it needs payloads)."""

    keys: pa.Table
    bounds: dict[str, list[tuple[int, int]]]
    scratch: str
    job: tasks.PrepareJob


class SparkRunner(Runner[Prepared]):
    """A runner whose batches run on a Spark session (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        lake: Lake,
        landing: LandingZone,
        master: str | None = None,
        session: SparkSession | None = None,
        hooks: Sequence[CommitHook] = (),
        verbose: bool = False,
    ) -> None:
        super().__init__(settings, lake, landing, hooks)
        self.master = master
        self.verbose = verbose  # Spark's own output on the terminal (else in spark_log)
        self._session = session
        self._owns_session = session is None
        self._scratch_swept = False

    @property
    def spark(self) -> SparkSession:
        if self._session is None:
            self._session = spark_session(self.settings, self.master, self.verbose)
        return self._session

    def stop(self) -> None:
        """Stop the Spark session this runner started (not one it was handed, nor
        spark-submit's, which ends with the application)."""
        if self._session is not None and self._owns_session and self.master is not None:
            self._session.stop()
        self._session = None

    def mart_kernels(self) -> Kernels:
        """Mart maintenance after a run: correlation and rollups on this Spark session."""
        from advertisex.marts.spark import SparkKernels

        return SparkKernels(self.spark, self.lake, self.settings)

    @property
    def parallelism(self) -> int:
        return max(1, self.spark.sparkContext.defaultParallelism)

    # ------------------------------------------------------------------ the engine's steps
    @contextmanager
    def read(self, batch: Batch) -> Iterator[Prepared]:
        """Stage 1 on the executors, its scratch folder kept until the batch is done
        (stages 2 and 3 read it); the driver learns each segment's record count or why it
        is unreadable, and which key files stage 1 wrote."""
        scratch = self.scratch(batch.id)
        remove_scratch(scratch, self.settings.scale)  # a crashed run's, for the same batch
        if not self._scratch_swept:  # and those of crashed batches run again under other ids
            minutes = self.settings.maintenance.orphan_min_age_minutes
            root = storage.join(self.settings.warehouse_uri, SCRATCH)
            remove_stale_scratch(root, self.settings.scale, timedelta(minutes=minutes), utcnow())
            self._scratch_swept = True
        try:
            job, listed = self._prepare(batch.segments, batch.rules, scratch)
            records, unreadable, damaged, keys, bounds = _listing(listed)
            batch.report("read")
            yield Prepared(records, unreadable, keys, bounds, scratch, job, damaged=damaged)
        finally:
            remove_scratch(scratch, self.settings.scale)

    def transform(self, batch: Batch, framed: Prepared) -> Transformed:
        """Stages 2 (dedupe across the batch and the committed keys) and 3 (finish and
        write data files), then the accounts from the executors' counts."""
        if not framed.records:
            return Transformed({}, {})
        duplicates = self._duplicates(framed, batch.rules.dedupe)
        batch.report("dedupe")
        finished = self._finish(framed, duplicates, batch)
        return Transformed(_files(finished), _accounts(finished, duplicates))

    # ------------------------------------------------------------------ stages
    @property
    def buckets(self) -> int:
        """Dedupe key buckets: more than tasks, to even out Spark's hash of the number."""
        return BUCKETS_PER_TASK * self.parallelism

    def scratch(self, batch_id: str) -> str:
        """The folder where stage 1 leaves a batch's standardized rows for stage 3: under
        the warehouse, which every executor reaches (they write the tables' files there)."""
        return storage.join(self.settings.warehouse_uri, SCRATCH, batch_id)

    def _prepare(
        self, segments: list[Segment], rules: BatchRules, scratch: str
    ) -> tuple[tasks.PrepareJob, pa.Table]:
        """Stage 1 over the batch's segments: its job and its rows (:data:`tasks.PREPARED`).
        Each task gets its own share of the segments (:func:`slices`, by :func:`weight`)."""
        shares = slices([weight(s) for s in segments], 2 * self.parallelism)
        job = tasks.PrepareJob(
            self.settings,
            rules.validation,
            rules.dims,
            tuple(segments),
            shares,
            self.buckets,
            scratch,
        )
        prepare = functools.partial(tasks.prepare, job=job)
        return job, self._run_tasks(len(shares), prepare, tasks.PREPARED, tasks._PREPARED)

    def _run_tasks(self, count: int, function: Any, ddl: str, schema: pa.Schema) -> pa.Table:
        """``function`` over task numbers 0…count-1, one task each (a task's number is its
        only input row, so Spark cannot put two in one task); its rows (``ddl`` to Spark,
        ``schema`` in Arrow), collected."""
        if not count:
            return schema.empty_table()
        numbers = self.spark.range(0, count, 1, numPartitions=count)
        return collect_arrow(numbers.mapInArrow(function, ddl), schema)

    def _duplicates(self, prepared: Prepared, lookup: DedupeLookup) -> pa.Table:
        """Stage 2: every repeat in the batch, by (table, segment, row), with conflicts.
        Every occurrence of a key, and its committed twin, is in the key files of one
        bucket; each task reads the files of its share of the buckets."""
        files = pa.concat_tables(
            [prepared.keys, self._committed_keys(prepared.bounds, lookup, prepared.scratch)]
        )
        by_bucket: dict[int, list[tuple[str, str]]] = {}
        sizes: dict[int, int] = {}
        for row in files.select(["bucket", "tbl", "path", "keys"]).to_pylist():
            by_bucket.setdefault(row["bucket"], []).append((row["tbl"], row["path"]))
            sizes[row["bucket"]] = sizes.get(row["bucket"], 0) + row["keys"]
        buckets = sorted(by_bucket)
        shares = slices([sizes[b] for b in buckets], 2 * self.parallelism)
        job = tasks.DedupeJob(
            self.settings,
            tuple(tuple(f for i in share for f in by_bucket[buckets[i]]) for share in shares),
            prepared.job,
        )
        dedupe = functools.partial(tasks.dedupe, job=job)
        return self._run_tasks(len(shares), dedupe, tasks.DUPLICATES, tasks._DUPLICATES)

    def _committed_keys(
        self, bounds: dict[str, list[tuple[int, int]]], lookup: DedupeLookup, scratch: str
    ) -> pa.Table:
        """Committed keys within the dedupe horizon of each table's candidates, read by the
        executors from the data files ``lookup`` names into key files (their rows): for
        each span of :meth:`DedupeLookup.around` the key files' bounds, the files that may
        hold its rows (a file in two spans read for each, its rows of each)."""
        files = []
        for table_name, intervals in bounds.items():
            lows, highs = (np.array(side, dtype=np.int64) for side in zip(*intervals, strict=True))
            for low, high in lookup.around(lows, highs):
                for path in lookup.data_files(table_name, low, high):
                    files.append((table_name, path, to_micros(low), to_micros(high)))
        if not files:
            return tasks._PREPARED.empty_table()
        listing = self.spark.createDataFrame(files, tasks.COMMITTED)
        reader = functools.partial(
            tasks.read_committed, settings=self.settings, buckets=self.buckets, scratch=scratch
        )
        tasks_ = min(len(files), 2 * self.parallelism)
        return collect_arrow(
            listing.repartition(tasks_).mapInArrow(reader, tasks.PREPARED), tasks._PREPARED
        )

    def _finish(self, prepared: Prepared, duplicates: pa.Table, batch: Batch) -> pa.Table:
        """Stage 3, wave by wave (``SOURCE_WAVES``): users that impressions expose as
        invalid traffic taint the same batch's clicks and conversions. Each wave's tasks
        take shares of its segments of about equal bytes and read their standardized rows
        from the scratch folder."""
        shared = self.spark.sparkContext.broadcast(_group_rows(duplicates))
        segments = batch.segments
        present = {segments[i].source for i in prepared.records}
        locations = {name: self.lake.table(name).location() for name in _written_tables(present)}
        rules = batch.rules
        results = []
        try:
            for wave in SOURCE_WAVES:
                indices = [i for i in sorted(prepared.records) if segments[i].source in wave]
                if not indices:
                    continue
                shares = slices([weight(segments[i]) for i in indices], 2 * self.parallelism)
                job = tasks.FinishJob(
                    self.settings,
                    batch.id,
                    batch.lineage,
                    rules.ivt,
                    locations,
                    shared,
                    tuple(segments),
                    tuple(tuple(indices[i] for i in share) for share in shares),
                    prepared.scratch,
                )
                finish = functools.partial(tasks.finish, job=job)
                result = self._run_tasks(len(shares), finish, tasks.FINISHED, tasks._FINISHED)
                results.append(result)
                users = result.filter(pc.equal(result.column("kind"), "ivt_user"))
                rules = rules.with_ivt_users(users.column("name").to_pylist())
        finally:
            shared.unpersist()
        return pa.concat_tables(results)


def process_on_spark(
    ax: Any, master: str | None, progress: Progress | None = None
) -> ProcessReport:
    """Process everything pending of platform ``ax`` on Spark (``master=None`` under
    spark-submit), then stop the session this started."""
    runner = SparkRunner(ax.settings, ax.lake, ax.landing, master=master, hooks=ax.commit_hooks)
    try:
        return runner.process(progress)
    finally:
        runner.stop()


def slices(sizes: list[int], count: int) -> tuple[tuple[int, ...], ...]:
    """Indices of ``sizes`` shared out in at most ``count`` slices of about equal total size
    (the largest first, each to the lightest slice so far), each in index order.

    >>> slices([5, 1, 1, 3, 2], 2)
    ((0, 1), (2, 3, 4))
    """
    loads = [0] * max(1, min(count, len(sizes)))
    shares: list[list[int]] = [[] for _ in loads]
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        lightest = loads.index(min(loads))
        shares[lightest].append(index)
        loads[lightest] += sizes[index]
    return tuple(tuple(sorted(share)) for share in shares if share)


def _listing(
    listed: pa.Table,
) -> tuple[
    dict[int, int], dict[int, str], dict[int, str], pa.Table, dict[str, list[tuple[int, int]]]
]:
    """Stage 1's rows as (segment index → records framed, segment index → why it could not
    be read, segment index → the damage its frame ends in, the key files, table →
    event-time bounds of its candidates' key files)."""
    records: dict[int, int] = {}
    unreadable: dict[int, str] = {}
    damaged: dict[int, str] = {}
    bounds: dict[str, list[tuple[int, int]]] = {}
    for row in listed.filter(pc.not_equal(listed.column("kind"), "keys")).to_pylist():
        if row["kind"] == "rows":
            records[row["segment"]] = row["records"]
            if row["reason"] is not None:
                damaged[row["segment"]] = row["reason"]
        else:
            unreadable[row["segment"]] = row["reason"]
    keys = listed.filter(pc.equal(listed.column("kind"), "keys"))
    for row in keys.select(["tbl", "low_us", "high_us"]).to_pylist():
        bounds.setdefault(row["tbl"], []).append((row["low_us"], row["high_us"]))
    return records, unreadable, damaged, keys, bounds


def _group_rows(duplicates: pa.Table) -> dict[tuple[str, int], Any]:
    """(table, segment) → row numbers of its duplicates, as numpy arrays."""
    import numpy as np

    groups: dict[tuple[str, int], list[int]] = {}
    for table_name, segment, r in zip(
        duplicates.column("tbl").to_pylist(),
        duplicates.column("segment").to_pylist(),
        duplicates.column("row_number").to_pylist(),
        strict=True,
    ):
        groups.setdefault((table_name, segment), []).append(r)
    return {key: np.asarray(rows, dtype=np.int64) for key, rows in groups.items()}


def _written_tables(sources: set[str]) -> list[str]:
    names = ["curated.quarantine", "curated.filtered"]
    for source in sources:
        names.extend(SOURCES[source])
    return names


def _accounts(finished: pa.Table, duplicates: pa.Table) -> dict[str, SourceAccount]:
    """Per-source accounting from the executors' counts and the driver's duplicates."""
    accounts: dict[str, SourceAccount] = {}
    for row in finished.to_pylist():
        account = accounts.setdefault(row["source"], SourceAccount(row["source"]))
        kind, count = row["kind"], row["count"]
        if kind == "accepted":
            account.by_table[row["tbl"]] = account.by_table.get(row["tbl"], 0) + count
            account.accepted += count
        elif kind == "records_in":
            account.records_in += count
        elif kind == "quarantined":
            account.quarantined += count
        elif kind == "filtered":
            account.filtered += count
        elif kind == "ivt_user":
            account.ivt_users.add(row["name"])
        elif kind == "new_field":
            account.new_fields.add(row["name"])
    source_of = {table: source for source, tables in SOURCES.items() for table in tables}
    for row in duplicates.to_pylist():
        source = source_of[row["tbl"]]
        account = accounts.setdefault(source, SourceAccount(source))
        account.duplicates += 1
        account.conflicts += int(row["conflict"])
    return accounts


def _files(finished: pa.Table) -> dict[str, list[WrittenFile]]:
    """The data files the executors wrote, per table."""
    files: dict[str, list[WrittenFile]] = {}
    for row in finished.filter(pc.equal(finished.column("kind"), "file")).to_pylist():
        files.setdefault(row["tbl"], []).append(
            WrittenFile(row["name"], row["count"], row["newest_us"])
        )
    return files
