"""Continuous processing: pick up newly sealed landing segments until told to stop.

The follower is a runner (embedded or Spark) in a loop. Each pass cuts whatever is
pending into batches and commits them one by one (each atomically, with its segment
checkpoint), so stopping between batches — or being killed inside one — loses nothing
and repeats nothing. When nothing is pending it sleeps ``interval`` seconds; while there
is work it goes straight on, so a burst drains at full speed.

The marts follow too: at most every ``marts_every`` seconds, after a pass that
committed something, the runner folds the new rows into them (incrementally, in one
atomic commit), so reports stay minutes fresh without slowing every micro-batch. An
update holds the batches up while it runs, so the next one waits at least
:data:`MARTS_REST` times as long as the last took: however long updates grow (their
attribution reads the users' last day of impressions), they take at most a quarter of
the follower's time and the batches keep up; the marts then lag by about four updates,
which ``MartsBehind`` reports past ``monitor.marts_behind_seconds``.

And the lake is kept in shape: every ``maintain_every`` seconds (counted from the last
maintenance run ``ops.maintenance`` records, so a restart does not reset the clock) the
follower starts a maintenance run (``advertisex.lake.upkeep``) in a thread beside its
batches; when told to stop, or ended by an error, it waits for that run to finish the
table it is on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advertisex.errors import AdvertiseXError, BatchCancelled
from advertisex.lake.damage import explained
from advertisex.landing.zone import segment_time
from advertisex.runners.batch import SourceAccount
from advertisex.runners.lock import processor_lock
from advertisex.runners.runner import ProcessReport, Runner
from advertisex.util.health import HealthFile
from advertisex.util.isolate import release_memory
from advertisex.util.retry import backoff, delay
from advertisex.util.timeutil import utcnow

log = logging.getLogger(__name__)

# After a marts update that took t seconds the next waits at least MARTS_REST × t: updates
# take at most 1 / (1 + MARTS_REST) of the follower's time, whatever they cost.
MARTS_REST = 3.0


@dataclass(frozen=True)
class BatchDone:
    """One committed batch, as the follow loop reports it."""

    batch_id: str
    segments: int
    accounts: dict[str, SourceAccount]
    seconds: float  # processing time of this batch
    lag_seconds: float  # from the oldest segment's landing to this batch's commit
    # Rows of days past their table's retention (by table): counted as accepted, as the
    # rows retention expires stay, and expired once the marts counted them.
    past_retention: dict[str, int] = field(default_factory=dict)

    @property
    def records_in(self) -> int:
        return sum(a.records_in for a in self.accounts.values())

    def total(self, name: str) -> int:
        return sum(int(getattr(a, name)) for a in self.accounts.values())


class Follower:
    """Runs batches as segments arrive; ``stop`` (a threading.Event) ends it between batches."""

    def __init__(
        self,
        runner: Runner[Any],
        *,
        interval: float = 0.5,
        stop: threading.Event | None = None,
        max_backoff: float = 30.0,
        marts_every: float | None = None,
        maintain_every: float | None = None,
        gather: float = 0.0,
    ) -> None:
        self.runner = runner
        self.interval = interval
        self.gather = gather  # seconds between batches while less than one is pending
        self._batched = float("-inf")  # monotonic time the last batch was committed
        self.stop = stop or threading.Event()
        runner.cancel = self.stop  # told to stop, the batch in progress is given up at once
        self.max_backoff = max_backoff
        self.marts_every = marts_every  # None: leave the marts alone
        self._marts_due = 0.0  # monotonic time the marts may be updated again
        # Batches were committed since the marts were last updated (by this follower; at
        # start, an earlier one may have stopped before its turn came).
        self._marts_behind = True
        self.maintain_every = maintain_every  # None: no scheduled maintenance
        self._maintain_due: float | None = None  # monotonic time of the next run
        self._upkeep: threading.Thread | None = None  # the maintenance run under way
        # Data files of days past retention the batches committed, expired once the marts
        # counted them (``Runner.expire_past_retention``).
        self._expiring: dict[str, list[str]] = {}

    def run(
        self,
        on_batch: Callable[[BatchDone], None],
        on_retry: Callable[[Exception, float], None] | None = None,
        on_marts: Callable[[Any], None] | None = None,
        on_wait: Callable[[str], None] | None = None,
        on_maintain: Callable[[Any], None] | None = None,
    ) -> int:
        """Loop until ``stop`` is set; returns the number of batches committed. While
        another processor runs on the lake, wait for it (``on_wait`` is told who it is)."""
        lock = processor_lock(
            self.runner.settings.data_dir, on_wait=on_wait or (lambda holder: None), stop=self.stop
        )
        with lock as held:
            return self._loop(on_batch, on_retry, on_marts, on_maintain) if held else 0

    def _loop(
        self,
        on_batch: Callable[[BatchDone], None],
        on_retry: Callable[[Exception, float], None] | None,
        on_marts: Callable[[Any], None] | None,
        on_maintain: Callable[[Any], None] | None,
    ) -> int:
        committed = 0
        failures = 0  # passes failed in a row
        # Written where the monitor (another process) reads it: a follower failing every
        # pass is an alert within minutes, not only once the ingest delay bound is crossed.
        health = HealthFile(
            self.runner.settings.data_dir,
            interval=self.interval,
            max_wait=max(self.interval, self.max_backoff),
        )

        def committed_one(batch: BatchDone) -> None:
            health.beat()  # a long pass over a backlog is not a hung one
            on_batch(batch)

        try:
            while not self.stop.is_set():
                try:
                    done = self.run_pending(committed_one)
                    committed += done  # counted before a stop can end the loop
                    self._marts_behind |= done > 0
                    if self.stop.is_set():
                        break  # the marts catch up at the next start; stop means now
                    self._keep_marts(on_marts)
                    if self.marts_every is None or not self._marts_behind:  # counted first
                        self.runner.expire_past_retention(self._expiring)
                    self._keep_lake(on_maintain, on_retry)
                except BatchCancelled:
                    break  # told to stop mid-batch: nothing of it committed, redone next time
                except AdvertiseXError as error:
                    health.failed(error)
                    if not error.retryable:
                        raise  # bad configuration or input: retrying cannot help
                    failures = self._back_off(error, failures, on_retry)
                    continue
                except Exception as error:  # a daemon outlives one bad pass
                    # A batch is committed atomically or not at all, so trying it again is
                    # safe; e.g. two processes creating the same table at once lose a race
                    # here. A file the storage lost fails every pass until it is dealt
                    # with: said so.
                    told = explained(self.runner.lake, error) or error
                    health.failed(told)
                    failures = self._back_off(told, failures, on_retry)
                    continue
                failures = 0
                health.passed()
                if not done:
                    self.stop.wait(self.interval)
        finally:
            health.stopped()  # nothing is judged of a follower that is not running
            # However the loop ends — told to stop, or an error it cannot retry on its way
            # to the CLI's exit — the maintenance run ends after the table it is on and is
            # waited for: a thread left inside pyiceberg / SQLite / Arrow while the
            # interpreter exits aborted the process (exit 134 or 139, 9 runs in 30).
            self.stop.set()
            if self._upkeep is not None:
                self._upkeep.join()
        return committed

    def _gathering(self, pending: list[Any]) -> bool:
        """Whether ``pending`` segments wait for more: while the last batch was committed
        less than ``gather`` seconds ago and they fill less than a batch. A collector seals a
        segment a second a source, and a batch of each look's few segments wrote a data file
        a table and a commit every half second: a marts update read hundreds of files a
        minute one at a time, maintenance compacted them. The first segments after a quiet
        spell go at once."""
        if self.gather <= 0 or not pending:
            return False
        waited = time.monotonic() - self._batched
        return waited < self.gather and len(self.runner.plan(pending)) == 1

    def _keep_marts(self, on_marts: Callable[[Any], None] | None) -> None:
        if self.marts_every is None or not self._marts_behind:
            return
        if time.monotonic() < self._marts_due:
            return
        started = time.monotonic()
        try:
            done = self.runner.update_marts()
        finally:
            # What the update freed goes back to the system: glibc and Arrow's jemalloc keep
            # it for the next request, and an arena no thread allocates from any more is
            # never purged (docs/running-for-months.md, "The follower's memory").
            release_memory()
        ended = time.monotonic()
        self._marts_behind = False
        self._marts_due = ended + max(self.marts_every, MARTS_REST * (ended - started))
        if on_marts and done is not None:
            on_marts(done)

    def _keep_lake(
        self,
        on_maintain: Callable[[Any], None] | None,
        on_retry: Callable[[Exception, float], None] | None,
    ) -> None:
        """Start a maintenance run when one is due, beside the batches (not between them:
        a run over every table takes seconds, which freshness would pay)."""
        if self.maintain_every is None:
            return
        if self._maintain_due is None:
            self._maintain_due = time.monotonic() + self._first_wait(self.maintain_every)
        running = self._upkeep is not None and self._upkeep.is_alive()
        if running or time.monotonic() < self._maintain_due:
            return
        # Due again a period from now even if this run fails: a failing maintenance must
        # not stall the batches, nor start again at once.
        self._maintain_due = time.monotonic() + self.maintain_every
        # Not a daemon: were the follower's own wait for it cut short (a second Ctrl-C), the
        # interpreter still waits for it before it finalizes, instead of ending it mid-call.
        self._upkeep = threading.Thread(
            target=self._maintain, args=(on_maintain, on_retry), name="maintenance"
        )
        self._upkeep.start()

    def _maintain(
        self,
        on_maintain: Callable[[Any], None] | None,
        on_retry: Callable[[Exception, float], None] | None,
    ) -> None:
        """One maintenance run on a lake of its own (a writer like the processor: each
        table change atomic, a race with a batch retried on fresh metadata)."""
        from advertisex.errors import MaintenanceBusyError
        from advertisex.lake.tables import Lake
        from advertisex.lake.upkeep import maintain
        from advertisex.marts.iceberg import positions
        from advertisex.runners.lock import maintenance_lock

        try:
            lake = Lake(self.runner.settings)
            with maintenance_lock(self.runner.settings.data_dir):
                report = maintain(
                    lake,
                    self.runner.landing,
                    trigger="schedule",
                    keep=positions(lake),
                    stop=self.stop,
                )
        except MaintenanceBusyError as busy:  # that run does this one's work: no warning
            log.info("scheduled maintenance skipped: %s", busy)
            return
        except Exception as error:  # reported, and tried again next period
            if on_retry and self.maintain_every is not None:
                on_retry(error, self.maintain_every)
            return
        finally:
            # A run reads groups of up to maintenance.compaction_group_bytes whole on this
            # thread: what it freed is handed back, as after a marts update (_keep_marts).
            release_memory()
        if on_maintain:
            on_maintain(report)

    def _first_wait(self, every: float) -> float:
        """Seconds until the first run: what is left of the period since the last one."""
        from advertisex.lake.upkeep import last_finished

        last = last_finished(self.runner.lake)
        if last is None:
            return every
        return max(0.0, every - (utcnow() - last).total_seconds())

    def _back_off(
        self, error: Exception, failures: int, on_retry: Callable[[Exception, float], None] | None
    ) -> int:
        """Wait as the retry policy says after ``failures + 1`` failed passes in a row.
        The next pass opens the tables again: a pass that failed before its commit left the
        metadata it had opened (a successful commit reopens them), and when another writer
        (``forget``, ``maintain``) had deleted what that metadata names, every pass after it
        failed the same way, for as long as the process ran."""
        self.runner.lake.refresh()
        failures += 1
        wait = delay(backoff(2 * self.interval, self.max_backoff), failures)
        if on_retry:
            on_retry(error, wait)
        self.stop.wait(wait)
        return failures

    def run_pending(self, on_batch: Callable[[BatchDone], None]) -> int:
        """Commit every batch pending now (stopping early if asked); returns how many."""
        pending = self.runner.pending()
        if self._gathering(pending):
            return 0
        done = 0
        for segments in self.runner.plan(pending):
            if self.stop.is_set():
                break
            started = time.perf_counter()
            report = ProcessReport(expiring=self._expiring)
            accounts, batch_id = self.runner.run_batch(segments, report=report)
            seconds = time.perf_counter() - started
            oldest = min(segment_time(s) for s in segments)
            lag = (utcnow() - oldest).total_seconds()
            past = report.past_retention
            on_batch(BatchDone(batch_id, len(segments), accounts, seconds, lag, past))
            done += 1
            self._batched = time.monotonic()
        return done
