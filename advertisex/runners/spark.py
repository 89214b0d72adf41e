"""The Spark runner: the embedded runner's batches, with the kernels spread over Spark.

``advertisex process --engine spark --master local[2]`` (or ``spark://…``, ``yarn``,
``k8s://…``, or no master under ``spark-submit``). Batches, batch ids, the
exactly-once checkpoint and ``ops.batches`` are the embedded runner's (this class is
one); only :meth:`SparkRunner.run_batch` differs:

    segments ──mapInArrow: read, frame, standardize, enrich──► blobs (persisted) + key rows
    key rows ∪ committed keys ──repartition(table, key)──mapInArrow: find_duplicates──► duplicates → driver
    blobs + broadcast duplicates ──mapInArrow: quarantine, IVT, accepted rows──► Parquet files
    driver: add_files for every table + ops.batches + segment marks, one catalog transaction

Wide rows are never shuffled: only (table, key, payload hash, position) crosses the
network, as in the embedded dedupe. Executors write the data files into the tables'
locations; a crash before the driver's transaction leaves only unreferenced files,
and the batch is redone from the landing zone with the same id. After the batches,
mart maintenance runs its correlation and rollup kernels on the same session
(``advertisex.marts.spark``: parts by user, auction and campaign).

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.config import Settings
from advertisex.dims import snapshot as dimension_snapshot
from advertisex.errors import SparkUnavailableError
from advertisex.kernels.dedupe import SEEN_COLUMNS
from advertisex.kernels.standardize import Rules
from advertisex.lake.catalog import SegmentDone
from advertisex.lake.datafiles import add_files
from advertisex.lake.tables import Lake
from advertisex.landing.zone import LandingZone, Segment, lineage_table
from advertisex.model.schemas import SOURCES, TABLES
from advertisex.runners import spark_tasks as tasks
from advertisex.runners.batch import SourceAccount
from advertisex.runners.embedded import (
    EmbeddedRunner,
    ProcessReport,
    Progress,
    Unreadable,
    _batch_rows,
    batch_id_for,
    done_marks,
)
from advertisex.runners.hooks import CommitHook
from advertisex.util.spark_arrow import collect_arrow
from advertisex.util.timeutil import utcnow

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from advertisex.marts.maintain import Kernels

# Spark properties the runner sets unless the configuration (scale.spark_conf) does.
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "65536",
    "spark.driver.memory": "2g",
}


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


@contextlib.contextmanager
def _jvm_output_to(path: Path) -> Iterator[None]:
    """Whatever the JVM started inside the block prints (log4j warnings, Java stack
    traces) goes to ``path``: it inherits this process's stdout and stderr, which point
    there while it starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
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


class SparkRunner(EmbeddedRunner):
    """EmbeddedRunner whose batches run on Spark (see the module docstring)."""

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

    def run_batch(
        self,
        segments: list[Segment],
        progress: Progress | None = None,
        now: datetime | None = None,
        report: ProcessReport | None = None,
    ) -> tuple[dict[str, SourceAccount], str]:
        started_at = utcnow()
        batch_id = batch_id_for(segments)
        rules = self.rules(now or started_at)
        lineage = lineage_table(segments)  # before unreadable ones drop out: indices stay
        prepared = self._prepare(segments, rules)
        try:
            records, unreadable = self._segment_records(prepared)
            for index, reason in sorted(unreadable.items()):
                item = Unreadable(segments[index], reason)
                with contextlib.suppress(FileNotFoundError):
                    self.landing.quarantine_file(item.segment, item.reason)
                if report is not None:
                    report.unreadable.append(item)
            if progress:
                progress("read", len(segments), len(segments))
            kept = [(i, s) for i, s in enumerate(segments) if i in records]
            if not kept:
                return {}, batch_id
            duplicates = self._duplicates(prepared)
            if progress:
                progress("dedupe", len(segments), len(segments))
            finished = self._finish(prepared, [s for _, s in kept], duplicates, lineage, batch_id)
        finally:
            prepared.unpersist()
        segments = [s for _, s in kept]
        accounts = _accounts(finished, duplicates, segments)
        files = _files(finished)
        by_source = {source: [s for s in segments if s.source == source] for source in accounts}
        committed_at = utcnow()
        framed = {s.name: records[i] for i, s in kept}
        marks = done_marks(segments, framed, batch_id, committed_at)
        if progress:
            progress("commit", len(segments), len(segments))
        self._commit(
            files,
            _batch_rows(batch_id, accounts, by_source, started_at, committed_at),
            marks,
            {"advertisex.batch-id": batch_id},
        )
        self._committed_batch(marks, accounts, started_at, segments, _newest_events(finished))
        return accounts, batch_id

    # ------------------------------------------------------------------ stages
    def _prepare(self, segments: list[Segment], rules: Rules) -> DataFrame:
        """Stage 1 over the batch's segments, persisted: stages 2 and 3 both read it."""
        rows = [(i, s.source, s.name, s.size) for i, s in enumerate(segments)]
        slices = min(len(rows), 2 * self.parallelism)
        listing = self.spark.createDataFrame(
            rows, "segment int, source string, name string, size long"
        ).repartition(slices)
        job = tasks.PrepareJob(self.settings, rules, dimension_snapshot(self.lake))
        prepared = listing.mapInArrow(functools.partial(tasks.prepare, job=job), tasks.PREPARED)
        return prepared.persist()

    def _segment_records(self, prepared: DataFrame) -> tuple[dict[int, int], dict[int, str]]:
        """(segment index → records framed, segment index → why it could not be read)."""
        from pyspark.sql import functions as F

        listed = collect_arrow(
            prepared.filter(F.col("kind").isin("rows", "unreadable")).select(
                "kind", "segment", "n", "k"
            )
        )
        records, unreadable = {}, {}
        for row in listed.to_pylist():
            if row["kind"] == "rows":
                records[row["segment"]] = row["n"]
            else:
                unreadable[row["segment"]] = row["k"]
        return records, unreadable

    def _duplicates(self, prepared: DataFrame) -> pa.Table:
        """Stage 2: every repeat in the batch, by (table, segment, row), with conflicts."""
        from pyspark.sql import functions as F

        keys = prepared.filter(F.col("kind") == "key")
        bounds = keys.groupBy("tbl").agg(F.min("t").alias("low"), F.max("t").alias("high"))
        committed = self._committed_keys(collect_arrow(bounds).to_pylist())
        candidates = keys.select("tbl", "k", "h", "segment", "r")
        if committed is not None:
            candidates = candidates.unionByName(committed)
        marked = candidates.repartition(2 * self.parallelism, "tbl", "k").mapInArrow(
            tasks.dedupe, tasks.DUPLICATES
        )
        return collect_arrow(marked, tasks._DUPLICATES)

    def _committed_keys(self, bounds: list[dict[str, Any]]) -> DataFrame | None:
        """Committed keys within the dedupe horizon of each table's candidates, read by the
        executors from the data files pyiceberg plans (the embedded runner's ``_seen``)."""
        from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual

        horizon = timedelta(days=self.settings.processor.dedupe_horizon_days)
        files = []
        for bound in bounds:
            table = self.lake.table(bound["tbl"])
            if table.current_snapshot() is None:
                continue
            low, high = _utc(bound["low"]) - horizon, _utc(bound["high"]) + horizon
            row_filter = And(
                GreaterThanOrEqual("event_time", low.isoformat()),  # type: ignore[call-arg,misc]
                LessThanOrEqual("event_time", high.isoformat()),  # type: ignore[call-arg,misc]
            )
            fields = (*SEEN_COLUMNS[bound["tbl"]], "event_time")
            for task in table.scan(row_filter=row_filter, selected_fields=fields).plan_files():
                if task.delete_files:
                    raise RuntimeError(
                        f"{bound['tbl']} has delete files, which the Spark runner does not read"
                    )
                files.append((bound["tbl"], task.file.file_path, _micros(low), _micros(high)))
        if not files:
            return None
        listing = self.spark.createDataFrame(files, tasks.COMMITTED)
        return listing.repartition(min(len(files), 2 * self.parallelism)).mapInArrow(
            functools.partial(tasks.read_committed, settings=self.settings), tasks.KEYS
        )

    def _finish(
        self,
        prepared: DataFrame,
        segments: list[Segment],
        duplicates: pa.Table,
        lineage: pa.Table,
        batch_id: str,
    ) -> pa.Table:
        """Stage 3, impressions and bids first: users they expose as invalid traffic taint
        the same batch's clicks and conversions (as in the embedded runner)."""
        from pyspark.sql import functions as F

        present = {s.source for s in segments}
        repeats: dict[tuple[str, int], Any] = {}
        for (table_name, segment), group in _group_rows(duplicates).items():
            repeats[(table_name, segment)] = group
        shared = self.spark.sparkContext.broadcast(repeats)
        locations = {name: self.lake.table(name).location() for name in _written_tables(present)}
        ivt = self._ivt_rules(segments)
        results = []
        try:
            for wave in (("impressions", "bids"), ("clicks",)):
                sources = [s for s in wave if s in present]
                if not sources:
                    continue
                job = tasks.FinishJob(self.settings, batch_id, lineage, ivt, locations, shared)
                blobs = prepared.filter(
                    (F.col("kind") == "rows") & F.col("source").isin(*sources)
                ).select("segment", "source", "blob")
                result = collect_arrow(
                    blobs.mapInArrow(functools.partial(tasks.finish, job=job), tasks.FINISHED),
                    tasks._FINISHED,
                )
                results.append(result)
                users = result.filter(pc.equal(result.column("kind"), "ivt_user"))
                if ivt is not None and users.num_rows:
                    ivt = ivt.with_users(users.column("text").to_pylist())
        finally:
            shared.unpersist()
        return pa.concat_tables(results)

    def _commit(
        self,
        files: dict[str, list[str]],
        batches: pa.Table,
        marks: list[SegmentDone],
        properties: dict[str, str],
    ) -> None:
        """Register the executors' data files, append ``ops.batches`` and mark the segments
        done: one catalog transaction, as ``Lake.commit_batch`` does for the embedded runner."""
        tables = {name: self.lake.table(name) for name in files}
        batch_table = self.lake.table("ops.batches")
        with self.lake.catalog.atomic(marks):
            for name, table in tables.items():
                add_files(table, files[name], properties)
            batch_table.append(batches.select(TABLES["ops.batches"].schema.names), properties)
        self.lake.refresh()


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


def _group_rows(duplicates: pa.Table) -> dict[tuple[str, int], Any]:
    """(table, segment) → row numbers of its duplicates, as numpy arrays."""
    import numpy as np

    groups: dict[tuple[str, int], list[int]] = {}
    for table_name, segment, r in zip(
        duplicates.column("tbl").to_pylist(),
        duplicates.column("segment").to_pylist(),
        duplicates.column("r").to_pylist(),
        strict=True,
    ):
        groups.setdefault((table_name, segment), []).append(r)
    return {key: np.asarray(rows, dtype=np.int64) for key, rows in groups.items()}


def _written_tables(sources: set[str]) -> list[str]:
    names = ["curated.quarantine", "curated.filtered"]
    for source in sources:
        names.extend(SOURCES[source])
    return names


def _accounts(
    finished: pa.Table, duplicates: pa.Table, segments: list[Segment]
) -> dict[str, SourceAccount]:
    """Per-source accounting from the executors' counts and the driver's duplicates."""
    present = {s.source for s in segments}
    accounts: dict[str, SourceAccount] = {
        source: SourceAccount(
            source,
            files=sum(1 for s in segments if s.source == source),
            bytes=sum(s.size for s in segments if s.source == source),
        )
        for source in ("impressions", "bids", "clicks")
        if source in present
    }
    for row in finished.to_pylist():
        account = accounts[row["source"]]
        if row["kind"] == "count" and row["tbl"]:
            account.by_table[row["tbl"]] = account.by_table.get(row["tbl"], 0) + row["n"]
            account.accepted += row["n"]
        elif row["kind"] == "count":
            setattr(account, row["text"], getattr(account, row["text"]) + row["n"])
        elif row["kind"] == "ivt_user":
            account.ivt_users.add(row["text"])
        elif row["kind"] == "new_field":
            account.new_fields.add(row["text"])
    source_of = {table: source for source, tables in SOURCES.items() for table in tables}
    for row in duplicates.to_pylist():
        account = accounts[source_of[row["tbl"]]]
        account.duplicates += 1
        account.conflicts += int(row["conflict"])
    for account in accounts.values():
        for table_name in SOURCES[account.source]:
            account.by_table.setdefault(table_name, 0)
    return accounts


def _files(finished: pa.Table) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for row in finished.filter(pc.equal(finished.column("kind"), "file")).to_pylist():
        files.setdefault(row["tbl"], []).append(row["text"])
    return files


def _newest_events(finished: pa.Table) -> dict[str, pa.Table]:
    """table → its newest event time in this batch, the shape ``record_batch`` reads."""
    newest: dict[str, int] = {}
    for row in finished.filter(pc.equal(finished.column("kind"), "file")).to_pylist():
        if row["t"] is not None:
            newest[row["tbl"]] = max(newest.get(row["tbl"], row["t"]), row["t"])
    return {
        name: pa.table({"event_time": pa.array([_utc(us)], pa.timestamp("us", "UTC"))})
        for name, us in newest.items()
    }


def _utc(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
