"""The runner template: pending landing segments → batches → an engine → one atomic commit.

Everything a batch does apart from the work on its records happens here, once, for every
engine: the batch plan, the batch id, the rules (:class:`~advertisex.runners.rules.BatchRules`),
unreadable segments set aside, the accounting and its checks, the ``ops.batches`` rows,
the commit with the segments' "done" marks, and what follows a commit (the done-mark
cache, the post-commit hooks: :mod:`advertisex.runners.hooks`). An engine supplies two steps (:class:`Runner` subclasses):

* :meth:`Runner.read` — read and frame the batch's segments: how many records each
  gave, or why it could not be read (a context manager: what it holds is released after
  the batch); an engine that streams the batch fills that in during its transform;
* :meth:`Runner.transform` — the readable segments' records through the kernels into
  data files written in the tables' locations, and one :class:`SourceAccount` per source
  (nothing when no segment was readable).

``EmbeddedRunner`` does both in this process; ``SparkRunner`` on a Spark session.

Batches are cut from pending segments in arrival order, at most
``processor.batch_max_bytes`` each (at least one segment); each batch's id is derived
from its segments, so a batch re-run after a crash is the same batch. The data files,
the ``ops.batches`` rows and the "segment done" marks are committed in one catalog
transaction (see lake.catalog): killing the process at any instant leaves either the
whole batch or none of it, and files of a batch that never committed are unreferenced.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pyarrow as pa

from advertisex.config import Settings
from advertisex.errors import AccountingError, BatchCancelled, TransientError
from advertisex.formats.bounded import DECODE_REFUSALS

# (The catalog's libraries, pyiceberg's SQL catalog and SQLAlchemy, load with the runner, on
# the command's serial start: loaded on the thread that opens a new lake's tables beside the
# first pieces, their ≈ 0.3 s of imports held the GIL against the pieces' threads, whose
# every return from a kernel waited for it, and a core stood idle for a second.)
from advertisex.lake.catalog import SegmentDone
from advertisex.lake.datafiles import WrittenFile
from advertisex.lake.tables import Lake
from advertisex.landing.zone import LandingZone, Segment, landing_day, lineage_table, segment_time
from advertisex.model.reasons import SEGMENT_UNREADABLE
from advertisex.model.schemas import BATCHES, QUARANTINE, SOURCES
from advertisex.runners.batch import SourceAccount
from advertisex.runners.committed import CommittedKeys
from advertisex.runners.hooks import CommitHook
from advertisex.runners.lock import processor_lock
from advertisex.runners.rules import SOURCE_ORDER, BatchRules
from advertisex.util.retry import retrying
from advertisex.util.timeutil import from_micros, utcnow

if TYPE_CHECKING:
    from advertisex.marts.iceberg import Replayed
    from advertisex.marts.maintain import Kernels, MartUpdate

T = TypeVar("T")

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class Unreadable:
    """A landing segment that could not be read or decoded at all, and why."""

    segment: Segment
    reason: str


@dataclass
class ProcessReport:
    batches: list[str] = field(default_factory=list)
    # Segments set aside whole: each a curated.quarantine entry (segment_unreadable), the
    # file left where it landed for `quarantine replay`.
    unreadable: list[Unreadable] = field(default_factory=list)
    # Segments damaged past some point (a gzip stream, an Avro block), and where: their
    # records before it were kept, the rest is one quarantine entry (gzip_damaged,
    # avro_unreadable) until the producer sends the file again. Told by every engine (the
    # Spark runner's executors hand it to its driver with their frames' counts).
    damaged: list[Unreadable] = field(default_factory=list)
    accounts: dict[str, SourceAccount] = field(default_factory=dict)
    segments: int = 0
    seconds: float = 0.0
    marts: MartUpdate | None = None  # what bringing the marts up to date did (None: off)
    # Rows of days past their table's retention (by table): counted in ``ops.batches`` as
    # accepted, as rows retention expires stay. A replay's are left out at the commit; a
    # first processing's are committed (``expiring``: table → data files), for the marts'
    # update to count, then expired (:meth:`Runner.expire_past_retention`).
    past_retention: dict[str, int] = field(default_factory=dict)
    expiring: dict[str, list[str]] = field(default_factory=dict)
    # Seconds spent per phase, over all batches: ``prepare`` (the batch's rules: committed
    # keys, dimensions), ``transform`` (read, decode, kernels, data files), ``commit``,
    # ``marts`` (bringing the marts up to date).
    phases: dict[str, float] = field(default_factory=dict)

    def timed(self, phase: str, started: float) -> None:
        """Add the time since ``started`` (``time.perf_counter()``) to ``phase``."""
        self.phases[phase] = self.phases.get(phase, 0.0) + time.perf_counter() - started

    def add(self, account: SourceAccount) -> None:
        self.accounts.setdefault(account.source, SourceAccount(account.source)).add(account)

    @property
    def records_in(self) -> int:
        return sum(a.records_in for a in self.accounts.values())


@dataclass(frozen=True)
class Batch:
    """One batch as the template hands it to an engine."""

    id: str
    segments: list[Segment]  # as planned; a segment's index here is its lineage ``segment``
    lineage: pa.Table  # segment index → source_file, ingest_time
    rules: BatchRules
    progress: Progress | None = None

    def report(self, stage: str) -> None:
        """Tell the progress callback that ``stage`` is done for the whole batch."""
        if self.progress:
            self.progress(stage, len(self.segments), len(self.segments))


@dataclass
class Framed:
    """What reading a batch's segments gave; an engine adds what it keeps for its transform."""

    records: dict[int, int]  # segment index → records framed
    unreadable: dict[int, str]  # segment index → why not
    damaged: dict[int, str] = field(default_factory=dict, kw_only=True)  # index → where, why


@dataclass
class Transformed:
    """What an engine made of a batch's readable segments: data files written (not yet
    committed) per table, and what happened to every record, per source."""

    files: dict[str, list[WrittenFile]]
    accounts: dict[str, SourceAccount]


ReadT = TypeVar("ReadT", bound=Framed)


class Runner(ABC, Generic[ReadT]):
    """Processes pending landing segments batch by batch; an engine subclass supplies
    :meth:`read` and :meth:`transform` (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        lake: Lake,
        landing: LandingZone,
        hooks: Sequence[CommitHook] = (),
    ) -> None:
        self.settings = settings
        self.lake = lake
        self.landing = landing
        self.hooks = tuple(hooks)  # told of every commit (the monitor's metrics, …)
        # Set (by a follower told to stop): the batch in progress is given up at its next
        # step — a decode is stopped at once — and nothing of it is committed.
        self.cancel: threading.Event | None = None
        self._done: set[str] | None = None  # committed segment names, once read
        self._scan_from: date | None = None  # landing days before this are all done
        self._any_done = False  # whether the lake had committed anything when first read
        self._committed = CommittedKeys(lake)  # dedupe keys, read once per event day
        # Set by a replay: rows of days past retention are not committed (runners.replay);
        # otherwise they are, and expired after the marts' update.
        self.leave_out_past_retention = False

    # ------------------------------------------------------------------ the engine's steps
    @abstractmethod
    def read(self, batch: Batch) -> AbstractContextManager[ReadT]:
        """Read and frame ``batch.segments``: records framed per segment index, or why a
        segment could not be read (known after :meth:`transform` at the latest). What it
        holds for :meth:`transform` lives as long as the context."""

    @abstractmethod
    def transform(self, batch: Batch, framed: ReadT) -> Transformed:
        """The readable segments' records (``framed.records``) → data files and accounts:
        standardize, validate, filter invalid traffic (sources in ``SOURCE_WAVES`` order),
        dedupe against the batch and ``batch.rules.dedupe``, enrich, write."""

    # ------------------------------------------------------------------ planning
    def pending(self) -> list[Segment]:
        """Sealed segments not yet committed, in arrival order.

        The first call reads the whole landing zone and the done marks of what it holds;
        later calls (a follower's passes) keep the done marks in memory and list only
        landing days from the earliest one still pending (at least yesterday — new segments
        land today). Marks of days no longer listed are let go: a follower's memory stays
        bounded by the days it lists, not by how long it has run.
        """
        if self._done is None:
            self._done = self.lake.done_in(self.landing)
            self._any_done = bool(self._done) or self.lake.ledger_reads.any()
        pending = self.landing.segments(since=self._scan_from, skip=self._done)
        floor = utcnow().date() - timedelta(days=1)
        since = min([d for s in pending if (d := landing_day(s)) is not None] + [floor])
        if self._scan_from is not None and since > self._scan_from:
            _let_go_before(self._done, since)  # the same set: it only loses unlisted days
        self._scan_from = since
        return pending

    def plan(self, pending: list[Segment]) -> list[list[Segment]]:
        """Cut pending segments into batches of at most ``batch_max_bytes``."""
        limit = self.settings.processor.batch_max_bytes
        batches: list[list[Segment]] = []
        current: list[Segment] = []
        size = 0
        for segment in pending:
            if current and size + segment.size > limit:
                batches.append(current)
                current, size = [], 0
            current.append(segment)
            size += segment.size
        if current:
            batches.append(current)
        return batches

    def rules(self, now: datetime, segments: list[Segment]) -> BatchRules:
        """What a batch of ``segments`` starting ``now`` is judged against."""
        sources = {s.source for s in segments}
        return BatchRules.build(self.settings, self.lake, now, sources, self._committed)

    # ------------------------------------------------------------------ running
    def process(
        self,
        progress: Progress | None = None,
        now: datetime | None = None,
        replayed: Replayed | None = None,
    ) -> ProcessReport:
        """Process everything pending now; returns the accounting of what happened.
        Refuses (:class:`ProcessorBusyError`) while another processor runs on this lake.
        ``replayed``: what a landing replay took out before (the marts' update needs it)."""
        started = time.perf_counter()
        report = ProcessReport()
        with processor_lock(self.settings.data_dir), self._keeping_for_marts() as batches:
            for batch in batches:
                accounts, batch_id = retrying(
                    functools.partial(self._fresh, self.run_batch, batch, progress, now, report),
                    retry_on=(TransientError,),  # the lake translates driver errors
                    what="batch",
                )
                report.batches.append(batch_id)
                report.segments += len(batch)
                for account in accounts.values():
                    report.add(account)
            if report.batches or self._any_done:
                # Every run, not only one that committed: a run killed between its last
                # commit and this line left the marts behind, and "nothing pending" must
                # not leave them there (the marts know the snapshots they reflect).
                marts_started = time.perf_counter()
                report.marts = self.update_marts(progress, replayed)
                report.timed("marts", marts_started)
            self.expire_past_retention(report.expiring)
        report.seconds = time.perf_counter() - started
        return report

    @contextmanager
    def _keeping_for_marts(self) -> Iterator[list[list[Segment]]]:
        """The run's batches. A run of one batch whose marts are kept current keeps what the
        marts read of its rows while it writes them (``lake.kept``), until the run ends: the
        marts' update reads exactly the files the batch wrote (their first build ≈ 0.3 s
        sooner at 2 M events). A run of several batches keeps nothing — what one batch kept
        would stay in memory through the next, above the batches' own bound — nor does a
        batch of more landing bytes than :data:`_KEPT_BATCH_BYTES`, which would pass the
        budget and hold it for nothing."""
        batches = self.plan(self.pending())
        small = len(batches) == 1 and sum(s.size for s in batches[0]) <= _KEPT_BATCH_BYTES
        if not small or not self.settings.correlation.update_marts:
            yield batches
            return
        from advertisex.marts.maintain import CURATED_READS

        self.lake.keep_written(CURATED_READS, _KEPT_FOR_MARTS_BYTES)
        try:
            yield batches
        finally:
            self.lake.forget_written()

    def run_batch(
        self,
        segments: list[Segment],
        progress: Progress | None = None,
        now: datetime | None = None,
        report: ProcessReport | None = None,
    ) -> tuple[dict[str, SourceAccount], str]:
        """Run one batch of ``segments`` and commit it; (accounts per source, batch id)."""
        report = report if report is not None else ProcessReport()
        started_at = utcnow()
        phase_started = time.perf_counter()
        batch = Batch(
            id=batch_id_for(segments),
            segments=segments,
            lineage=lineage_table(segments),
            rules=self.rules(now or started_at, segments),
            progress=progress,
        )
        report.timed("prepare", phase_started)
        phase_started = time.perf_counter()
        with self.read(batch) as framed:
            self.check_cancel()
            transformed = self.transform(batch, framed)
        report.timed("transform", phase_started)
        phase_started = time.perf_counter()
        # What the marts will read of the batch's rows is decoded beside the commit.
        self.lake.settle_written()
        # What each segment gave is known once the engine is done (one may stream them).
        kept = [s for i, s in enumerate(segments) if i in framed.records]
        unreadable = [Unreadable(segments[i], why) for i, why in sorted(framed.unreadable.items())]
        files = {name: [f.url for f in written] for name, written in transformed.files.items()}
        try:
            self.check_cancel()
            accounts = _checked_accounts(transformed.accounts, kept, framed.records, segments)
            accounts = set_aside(accounts, unreadable)
            committed_at = utcnow()
            # By index: a batch after a backlog holds tens of thousands of segments, and a
            # test of each against the lists of the others took minutes (38,025: 200 s).
            consumed = [
                s for i, s in enumerate(segments) if i in framed.records or i in framed.unreadable
            ]
            rows = {
                "ops.batches": batch_rows(batch.id, accounts, consumed, started_at, committed_at),
                "curated.quarantine": set_aside_rows(batch.id, unreadable),
            }
            for name, written in self.lake.write_files(rows, batch.id).items():
                files.setdefault(name, []).extend(f.url for f in written)
        except BaseException:
            self.lake.remove_files(files)  # never to be committed: nobody's files
            raise
        indices = {s.name: i for i, s in enumerate(segments)}
        records = {s.name: framed.records.get(indices[s.name], 0) for s in consumed}
        marks = done_marks(consumed, records, batch.id, committed_at)
        batch.report("commit")
        self.lake.commit_files(
            files,
            marks,
            {"advertisex.batch-id": batch.id},
            past_retention=report.past_retention,
            expiring=None if self.leave_out_past_retention else report.expiring,
        )
        report.timed("commit", phase_started)
        self._told_set_aside(unreadable, report)
        report.damaged.extend(
            Unreadable(segments[i], why) for i, why in sorted(framed.damaged.items())
        )
        self._committed_batch(marks, accounts, started_at, kept, transformed.files)
        return accounts, batch.id

    def check_cancel(self) -> None:
        """Give up the batch in progress (nothing committed) if told to stop."""
        if self.cancel is not None and self.cancel.is_set():
            raise BatchCancelled(
                "stopped before the batch's commit; nothing of it was committed",
                hint="the next run makes the same batch again",
            )

    def _told_set_aside(self, unreadable: list[Unreadable], report: ProcessReport | None) -> None:
        """Segments set aside whole, now committed as quarantine entries: tell the hooks
        (a counter alerting rules watch) and the report."""
        for item in unreadable:
            for hook in self.hooks:
                hook.segment_unreadable(item.segment, item.reason)
            if report is not None:
                report.unreadable.append(item)

    def _committed_batch(
        self,
        marks: list[SegmentDone],
        accounts: dict[str, SourceAccount],
        started_at: datetime,
        segments: list[Segment],
        files: dict[str, list[WrittenFile]],
    ) -> None:
        """After a batch's commit: remember its segments as done, tell the hooks."""
        if self._done is not None:
            self._done.update(m.segment for m in marks)
            self._any_done = True
        seconds = (utcnow() - started_at).total_seconds()
        newest = _newest_events(files)
        for hook in self.hooks:
            hook.batch_committed(accounts, seconds, segments, newest)

    def _fresh(self, action: Callable[..., T], *args: Any) -> T:
        """Run ``action`` on freshly loaded table metadata (a retry after a lost race must)."""
        self.lake.refresh()
        return action(*args)

    # ------------------------------------------------------------------ after the batches
    def expire_past_retention(self, expiring: dict[str, list[str]]) -> None:
        """Expire the data files of days past their table's retention that batches
        committed (``ProcessReport.expiring``), once the marts' update counted their rows:
        a backfill's old days stayed in queries until the next ``maintain``. Retention's own
        step (``lake.retention``): archived first where configured, the marts step over it."""
        if expiring:
            self.lake.expire_committed(expiring)
            expiring.clear()

    def update_marts(
        self, progress: Progress | None = None, replayed: Replayed | None = None
    ) -> MartUpdate | None:
        """Fold what the batches committed into the marts (when ``correlation.update_marts``)."""
        from advertisex.marts.iceberg import update_marts  # kernels load on first use

        return update_marts(self.lake, self.settings, self.mart_kernels(), progress, replayed)

    def mart_kernels(self) -> Kernels | None:
        """Where mart maintenance runs its kernels after a run (None: in this process)."""
        return None

    def stop(self) -> None:
        """Release what the runner holds (an engine's session, say)."""


# At most this much of a batch's rows kept for the marts (past it, none), and only for a
# batch of at most twice as many landing bytes: the columns the marts read are ≈ 0.4 of the
# bytes of JSON impressions and Avro bids (the 2 M-event benchmark's one batch, 513 MiB of
# files, keeps ≈ 190 MB). Its peak, 0.9-1.0 GiB, stays within issue 14's 1.5 GiB; a bigger
# batch (3.8 M events, 992 MiB: peak 945 MiB) keeps nothing.
_KEPT_FOR_MARTS_BYTES = 320 << 20
_KEPT_BATCH_BYTES = 2 * _KEPT_FOR_MARTS_BYTES


def _checked_accounts(
    accounts: dict[str, SourceAccount],
    kept: list[Segment],
    records: dict[int, int],
    segments: list[Segment],
) -> dict[str, SourceAccount]:
    """The engine's accounts, in source order, with each source's files and bytes; every
    record framed from the source's segments must be accounted for exactly once."""
    indices = {s.name: i for i, s in enumerate(segments)}
    checked = {}
    for source in [s for s in SOURCE_ORDER if any(k.source == s for k in kept)]:
        mine = [s for s in kept if s.source == source]
        account = accounts.get(source) or SourceAccount(source)
        account.files, account.bytes = len(mine), sum(s.size for s in mine)
        for table_name in SOURCES[source]:
            account.by_table.setdefault(table_name, 0)
        framed = sum(records[indices[s.name]] for s in mine)
        if account.records_in != framed or not account.balanced:
            raise AccountingError(
                f"batch accounting of {source} does not add up: {framed} records framed, "
                f"{account.records_in} in = {account.accepted} accepted + "
                f"{account.quarantined} quarantined + {account.filtered} filtered + "
                f"{account.duplicates} duplicates",
                hint="nothing of this batch was committed; please report this as a bug",
            )
        checked[source] = account
    return checked


def set_aside(
    accounts: dict[str, SourceAccount], unreadable: list[Unreadable]
) -> dict[str, SourceAccount]:
    """``accounts`` with each segment set aside whole counted in its source: one file, its
    bytes, and one record in that is one quarantined entry (its records are unknown until
    a replay decodes it), so ``ops.batches`` still balances."""
    for item in unreadable:
        source = item.segment.source
        account = accounts.setdefault(source, SourceAccount(source))
        account.files += 1
        account.bytes += item.segment.size
        account.records_in += 1
        account.quarantined += 1
        account.by_table["curated.quarantine"] = account.by_table.get("curated.quarantine", 0) + 1
    return {s: accounts[s] for s in SOURCE_ORDER if s in accounts}


def set_aside_rows(batch_id: str, unreadable: list[Unreadable]) -> pa.Table:
    """One ``curated.quarantine`` entry per segment set aside whole: the reason
    ``segment_unreadable:<cause>``, where the file is and how big, and why in ``detail``.
    The file stays where it landed, for ``quarantine replay`` to decode again."""
    rows = [
        {
            "source": item.segment.source,
            "reasons": [f"{SEGMENT_UNREADABLE}:{unreadable_cause(item.reason)}"],
            "raw": f"landing file {item.segment.name} ({item.segment.size:,} bytes), "
            "set aside whole: its records were not decoded",
            "detail": item.reason,
            "event_time": None,
            "ingest_time": segment_time(item.segment),
            "source_file": item.segment.name,
            "source_position": 0,
            "batch_id": batch_id,
        }
        for item in unreadable
    ]
    return pa.Table.from_pylist(rows, schema=QUARANTINE)


def unreadable_cause(reason: str) -> str:
    """``decode_timeout``, ``decode_memory`` or ``decoder_crashed`` (the budgets), else
    ``decode_failed`` (the file could not be read, or its decoder raised)."""
    code = reason.split(":", 1)[0]
    return code if code in DECODE_REFUSALS else "decode_failed"


def done_marks(
    segments: list[Segment], records: dict[str, int], batch_id: str, committed_at: datetime
) -> list[SegmentDone]:
    """The "segment done" marks a batch commits: records framed from each segment by name."""
    at = committed_at.isoformat()
    return [SegmentDone(s.name, s.source, batch_id, records[s.name], s.size, at) for s in segments]


def batch_id_for(segments: list[Segment]) -> str:
    """Deterministic: the same segments make the same batch id, before and after a crash."""
    digest = hashlib.sha256("\n".join(s.name for s in segments).encode()).hexdigest()[:12]
    first = segments[0].name.rsplit("/", 1)[-1].split("-", 1)[0]
    return f"{first}-{digest}"


def batch_rows(
    batch_id: str,
    accounts: dict[str, SourceAccount],
    segments: list[Segment],
    started_at: datetime,
    committed_at: datetime,
) -> pa.Table:
    """The batch's ``ops.batches`` rows: one per source, with the segments it consumed."""
    rows = [
        {
            "batch_id": batch_id,
            "source": a.source,
            "started_at": started_at,
            "committed_at": committed_at,
            "files": a.files,
            "bytes": a.bytes,
            "records_in": a.records_in,
            "accepted": a.accepted,
            "quarantined": a.quarantined,
            "filtered": a.filtered,
            "duplicates": a.duplicates,
            "conflicts": a.conflicts,
            "segments": [s.name for s in segments if s.source == a.source],
            "new_fields": sorted(a.new_fields),
        }
        for a in accounts.values()
    ]
    return pa.Table.from_pylist(rows, schema=BATCHES)


def _newest_events(files: dict[str, list[WrittenFile]]) -> dict[str, pa.Table]:
    """table → its newest event time in this batch, the shape the hooks are told."""
    newest = {
        name: max(stamps)
        for name, written in files.items()
        if (stamps := [f.newest for f in written if f.newest is not None])
    }
    return {
        name: pa.table({"event_time": pa.array([from_micros(us)], pa.timestamp("us", "UTC"))})
        for name, us in newest.items()
    }


def _let_go_before(done: set[str], since: date) -> None:
    """Drop from ``done`` the names of segments that landed on days before ``since``."""
    done.difference_update(
        [name for name in done if (day := landing_day(name)) is not None and day < since]
    )
