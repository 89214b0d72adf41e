"""The embedded runner: pending landing segments → kernels in-process → one atomic commit.

Batches are cut from pending segments in arrival order, bounded by bytes and record
estimates; each batch's id is derived from its segments, so a batch re-run after a
crash is the same batch. The batch's tables, its ``ops.batches`` rows and the
"segment done" marks are committed in one catalog transaction (see lake.catalog):
killing the process at any instant leaves either the whole batch or none of it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from advertisex.config import Settings
from advertisex.dims import known_ids as known_dimension_ids
from advertisex.dims import snapshot as dimension_snapshot
from advertisex.errors import TransientError
from advertisex.formats.decode import concat_frames, frame_segment
from advertisex.kernels.dedupe import key_column
from advertisex.kernels.ivt import IvtRules
from advertisex.kernels.standardize import Rules
from advertisex.kernels.validate import Domains
from advertisex.lake.catalog import SegmentDone
from advertisex.lake.tables import Lake
from advertisex.landing.zone import LandingZone, Segment, landing_day, lineage_table
from advertisex.model.schemas import BATCHES
from advertisex.runners.batch import SourceAccount, process_source
from advertisex.runners.committed import CommittedKeys
from advertisex.runners.hooks import CommitHook
from advertisex.runners.lock import processor_lock
from advertisex.util.retry import retrying
from advertisex.util.timeutil import utcnow

if TYPE_CHECKING:
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
    # Segments moved aside to landing/_unreadable (kept, never deleted) with their reason.
    unreadable: list[Unreadable] = field(default_factory=list)
    accounts: dict[str, SourceAccount] = field(default_factory=dict)
    segments: int = 0
    seconds: float = 0.0

    def add(self, account: SourceAccount) -> None:
        total = self.accounts.setdefault(account.source, SourceAccount(account.source))
        for name in (
            "files",
            "bytes",
            "records_in",
            "accepted",
            "quarantined",
            "filtered",
            "duplicates",
            "conflicts",
        ):
            setattr(total, name, getattr(total, name) + getattr(account, name))
        total.new_fields |= account.new_fields
        for table, n in account.by_table.items():
            total.by_table[table] = total.by_table.get(table, 0) + n

    @property
    def records_in(self) -> int:
        return sum(a.records_in for a in self.accounts.values())


class EmbeddedRunner:
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
        self._done: set[str] | None = None  # committed segment names, once read
        self._scan_from: date | None = None  # landing days before this are all done
        self._committed = CommittedKeys(lake)  # dedupe keys, read once per event day

    def pending(self) -> list[Segment]:
        """Sealed segments not yet committed, in arrival order.

        The first call reads the whole landing zone and every done mark; later calls (a
        follower's passes) keep the done marks in memory and list only landing days from
        the earliest one still pending (at least yesterday — new segments land today).
        """
        if self._done is None:
            self._done = self.lake.done_segments()
        listed = self.landing.segments(since=self._scan_from)
        pending = [s for s in listed if s.name not in self._done]
        floor = utcnow().date() - timedelta(days=1)
        self._scan_from = min([d for s in pending if (d := landing_day(s)) is not None] + [floor])
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

    def process(
        self, progress: Progress | None = None, now: datetime | None = None
    ) -> ProcessReport:
        """Process everything pending now; returns the accounting of what happened.
        Refuses (:class:`ProcessorBusyError`) while another processor runs on this lake."""
        started = time.perf_counter()
        report = ProcessReport()
        with processor_lock(self.settings.data_dir):
            pending = self.pending()
            for batch in self.plan(pending):
                accounts, batch_id = retrying(
                    functools.partial(self._fresh, self.run_batch, batch, progress, now, report),
                    retry_on=(TransientError,),  # the lake translates driver errors
                    what="batch",
                )
                report.batches.append(batch_id)
                report.segments += len(batch)
                for account in accounts.values():
                    report.add(account)
            if report.batches:
                self.update_marts(progress)
        report.seconds = time.perf_counter() - started
        return report

    def update_marts(self, progress: Progress | None = None) -> MartUpdate | None:
        """Fold what the batches committed into the marts (when ``correlation.update_marts``)."""
        from advertisex.marts.iceberg import update_marts  # kernels load on first use

        return update_marts(self.lake, self.settings, self.mart_kernels(), progress)

    def stop(self) -> None:
        """Release what the runner holds (nothing here; the Spark runner's session)."""

    def mart_kernels(self) -> Kernels | None:
        """Where mart maintenance runs its kernels after a run: here, in this process."""
        return None

    def _fresh(self, action: Callable[..., T], *args: Any) -> T:
        """Run ``action`` on freshly loaded table metadata (a retry after a lost race must)."""
        self.lake.refresh()
        return action(*args)

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
        appends: dict[str, list[pa.Table]] = {}
        accounts: dict[str, SourceAccount] = {}
        lineage = lineage_table(segments)
        framed = self._frame_all(segments, progress)
        unreadable = [f for f in framed if isinstance(f, Unreadable)]
        for item in unreadable:
            with contextlib.suppress(FileNotFoundError):
                self.landing.quarantine_file(item.segment, item.reason)
            for hook in self.hooks:
                hook.segment_unreadable(item.segment, item.reason)
            if report is not None:
                report.unreadable.append(item)
        # Frames keep their segment index (lineage); unreadable segments simply have none.
        kept = [
            (s, f) for s, f in zip(segments, framed, strict=True) if not isinstance(f, Unreadable)
        ]
        segments = [s for s, _ in kept]
        frames = [f for _, f in kept]
        if not segments:
            return {}, batch_id
        records = {s.name: f.num_rows for s, f in kept}
        ivt = self._ivt_rules(segments)
        dims = dimension_snapshot(self.lake)  # campaign/creative versions for enrichment
        # Impressions first: users they expose as invalid traffic taint their clicks too.
        present = {s.source for s in segments}
        for source in [s for s in ("impressions", "bids", "clicks") if s in present]:
            indices = [i for i, s in enumerate(segments) if s.source == source]
            frame = concat_frames([frames[i] for i in indices])
            tables, account = process_source(
                source, frame, lineage, rules, batch_id, self._seen, ivt, dims
            )
            if ivt is not None and account.ivt_users:
                ivt = ivt.with_users(account.ivt_users)
            account.files = len(indices)
            account.bytes = sum(segments[i].size for i in indices)
            accounts[source] = account
            for name, table in tables.items():
                appends.setdefault(name, []).append(table)
        by_source = {source: [s for s in segments if s.source == source] for source in accounts}
        committed_at = utcnow()
        merged = {name: pa.concat_tables(parts) for name, parts in appends.items()}
        merged["ops.batches"] = _batch_rows(batch_id, accounts, by_source, started_at, committed_at)
        marks = done_marks(segments, records, batch_id, committed_at)
        if progress:
            progress("commit", len(segments), len(segments))
        self.lake.commit_batch(merged, marks, {"advertisex.batch-id": batch_id})
        self._committed_batch(marks, accounts, started_at, segments, merged)
        return accounts, batch_id

    def _committed_batch(
        self,
        marks: list[SegmentDone],
        accounts: dict[str, SourceAccount],
        started_at: datetime,
        segments: list[Segment],
        newest: dict[str, pa.Table],
    ) -> None:
        """After a batch's commit: remember its segments as done, tell the hooks
        (``newest``: per table, rows whose ``event_time`` says how fresh it is)."""
        if self._done is not None:
            self._done.update(m.segment for m in marks)
        seconds = (utcnow() - started_at).total_seconds()
        for hook in self.hooks:
            hook.batch_committed(accounts, seconds, segments, newest)

    def rules(self, now: datetime) -> Rules:
        """The validation rules a batch starting ``now`` is checked against."""
        processor = self.settings.processor
        return Rules(
            now=now,
            future_skew=timedelta(seconds=processor.future_skew_seconds),
            max_age=timedelta(days=d) if (d := processor.max_event_age_days) else None,
            domains=self._domains(),
        )

    def _domains(self) -> Domains | None:
        """Known campaign and creative ids, once dimensions are loaded (else no such check)."""
        known = known_dimension_ids(self.lake)
        if known is None:
            return None
        return Domains(campaigns=known.get("campaign_id"), creatives=known.get("ad_creative_id"))

    def _ivt_rules(self, segments: list[Segment]) -> IvtRules | None:
        """The batch's invalid-traffic rules, with users already caught in committed batches."""
        settings = self.settings.processor
        if not settings.ivt_filter:
            return None
        users: set[str] = set()
        if any(s.source == "clicks" for s in segments):
            table = self.lake.table("curated.filtered")
            if table.current_snapshot() is not None:
                from pyiceberg.expressions import In

                filtered = self.lake.read(
                    "curated.filtered",
                    In("event_table", ["curated.impressions"]),  # type: ignore[call-arg,misc]
                    ("user_id",),
                )
                users = set(filtered.column("user_id").drop_null().unique().to_pylist())
        return IvtRules(
            crawler_user_agents=True,
            ip_ranges=settings.ivt_ip_ranges,
            test_flags=settings.ivt_test_flags,
            ivt_users=frozenset(users),
        )

    def _frame_all(
        self, segments: list[Segment], progress: Progress | None
    ) -> list[pa.Table | Unreadable]:
        """Read and frame segments on two threads: the decoders spend their time in native code."""
        from concurrent.futures import ThreadPoolExecutor

        def work(item: tuple[int, Segment]) -> pa.Table | Unreadable:
            index, segment = item
            try:
                data = retrying(lambda: self.landing.read(segment), what=f"reading {segment.name}")
                return frame_segment(index, segment, data)
            except Exception as error:  # a file that cannot be read at all must not block the rest
                return Unreadable(segment, f"{type(error).__name__}: {error}")

        frames: list[pa.Table | Unreadable] = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            for frame in pool.map(work, enumerate(segments)):
                frames.append(frame)
                if progress:
                    progress("read", len(frames), len(segments))
        return frames

    def _seen(self, table_name: str, candidates: pa.Table) -> tuple[pa.Array, pa.Array] | None:
        """Committed keys whose event time lies within the dedupe horizon of the candidates."""
        if candidates.num_rows == 0 or self.lake.table(table_name).current_snapshot() is None:
            return None
        import pyarrow.compute as pc

        horizon = timedelta(days=self.settings.processor.dedupe_horizon_days)
        bounds = pc.min_max(candidates.column("event_time")).as_py()
        seen = self._committed.lookup(table_name, bounds["min"] - horizon, bounds["max"] + horizon)
        if seen is None:
            return None
        return key_column(table_name, seen), seen.column("payload_hash")


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


def _batch_rows(
    batch_id: str,
    accounts: dict[str, SourceAccount],
    segments: dict[str, list[Segment]],
    started_at: datetime,
    committed_at: datetime,
) -> pa.Table:
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
            "segments": [s.name for s in segments[a.source]],
            "new_fields": sorted(a.new_fields),
        }
        for a in accounts.values()
    ]
    return pa.Table.from_pylist(rows, schema=BATCHES)
