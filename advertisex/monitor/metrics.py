"""Prometheus metrics of the processor and the monitor (prometheus-client).

Processor metrics are recorded by :func:`record_batch` after each committed batch: the
runners call their post-commit hooks, and :class:`ProcessorMetrics` is the one
``advertisex.api`` hands them. The processor has no HTTP server of its own (it is a loop
over the landing zone), so after each batch its registry is also written, in the text
exposition format, to ``<data_dir>/monitor/processor.prom`` — the node_exporter
textfile convention — at most once a second (:data:`EXPORT_EVERY`). ``advertisex monitor --metrics-port`` serves the monitor's gauges
together with that file, so one scrape target covers processing and data quality.

Names follow Prometheus conventions: base units, ``_total`` counters, ``source`` and
``outcome`` labels only (no per-user or per-campaign labels: unbounded cardinality).
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile
from prometheus_client.registry import Collector

from advertisex.util.timeutil import utcnow

if TYPE_CHECKING:
    from advertisex.config import Settings

log = logging.getLogger("advertisex.monitor")

PROCESSOR = CollectorRegistry(auto_describe=True)
MONITOR = CollectorRegistry(auto_describe=True)
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_DELAY_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_newest: dict[str, float] = {}  # newest event time seen per source (late rows can't lower it)
# Curated table → the landing source that feeds it.
TABLE_SOURCE = {
    "curated.impressions": "impressions",
    "curated.clicks": "clicks",
    "curated.conversions": "clicks",
    "curated.bid_requests": "bids",
}

ROWS = Counter(
    "advertisex_processor_rows",
    "Records processed, by source and outcome (accepted, quarantined, filtered, duplicate).",
    ["source", "outcome"],
    registry=PROCESSOR,
)
CONFLICTS = Counter(
    "advertisex_processor_conflicts",
    "Duplicates whose payload differed from the first (a subset of outcome=duplicate).",
    ["source"],
    registry=PROCESSOR,
)
BATCHES = Counter("advertisex_processor_batches", "Batches committed.", registry=PROCESSOR)
UNREADABLE = Counter(
    "advertisex_processor_unreadable_files",
    "Landing files that could not be read at all and were moved aside, by source.",
    ["source"],
    registry=PROCESSOR,
)
BATCH_SECONDS = Histogram(
    "advertisex_processor_batch_duration_seconds",
    "Time to process and commit one batch.",
    buckets=_DURATION_BUCKETS,
    registry=PROCESSOR,
)
INGEST_DELAY = Histogram(
    "advertisex_processor_ingest_delay_seconds",
    "From a batch's oldest landing segment to its commit (ingest to queryable).",
    ["source"],
    buckets=_DELAY_BUCKETS,
    registry=PROCESSOR,
)
EVENT_LAG = Gauge(
    "advertisex_processor_event_lag_seconds",
    "At the last commit: commit time minus the newest event time committed.",
    ["source"],
    registry=PROCESSOR,
)
LAST_EVENT = Gauge(
    "advertisex_processor_last_event_timestamp_seconds",
    "Newest event time committed, per source (alert on time() minus this).",
    ["source"],
    registry=PROCESSOR,
)
LAST_COMMIT = Gauge(
    "advertisex_processor_last_commit_timestamp_seconds",
    "When the last batch with rows of this source was committed.",
    ["source"],
    registry=PROCESSOR,
)

FRESHNESS = Gauge(
    "advertisex_source_freshness_seconds",
    "Seconds since the source last landed a segment.",
    ["source"],
    registry=MONITOR,
)
BACKLOG = Gauge(
    "advertisex_landing_backlog_segments",
    "Sealed landing segments not yet processed.",
    ["source"],
    registry=MONITOR,
)
BACKLOG_BYTES = Gauge(
    "advertisex_landing_backlog_bytes",
    "Bytes of sealed landing segments not yet processed.",
    ["source"],
    registry=MONITOR,
)
ALERTS = Gauge(
    "advertisex_alerts",
    "Alerts by state (pending, firing) and severity.",
    ["state", "severity"],
    registry=MONITOR,
)
EVALUATIONS = Counter("advertisex_monitor_evaluations", "Monitor evaluations.", registry=MONITOR)
LAST_EVALUATION = Gauge(
    "advertisex_monitor_last_evaluation_timestamp_seconds",
    "When the monitors last ran.",
    registry=MONITOR,
)


class _MartsBehind(Collector):
    """``advertisex_marts_behind_seconds`` as the last evaluation saw it; absent while the
    marts are not judged (not kept current, never built): a 0 would read as current."""

    NAME = "advertisex_marts_behind_seconds"
    HELP = "Seconds since the oldest committed batch the marts have not folded in (0: current)."

    def __init__(self) -> None:
        self.value: float | None = None

    def describe(self) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        return [GaugeMetricFamily(self.NAME, self.HELP)]

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        if self.value is not None:
            yield GaugeMetricFamily(self.NAME, self.HELP, value=self.value)


MARTS_BEHIND = _MartsBehind()
MONITOR.register(MARTS_BEHIND)


def record_batch(
    accounts: dict[str, Any],
    seconds: float,
    segments: Iterable[Any] = (),
    tables: dict[str, pa.Table] | None = None,
    data_dir: Path | None = None,
) -> None:
    """Count one committed batch: rows by outcome, duration, ingest delay, event-time lag.

    Never raises: metrics must not fail a batch that is already committed.
    """
    try:
        _record_batch(accounts, seconds, list(segments), tables or {})
        _export(data_dir)
    except Exception:
        log.exception("could not record processor metrics")


class ProcessorMetrics:
    """The runner's post-commit hook (:class:`advertisex.runners.hooks.CommitHook`): counts
    each committed batch and unreadable file, and writes the textfile under ``data_dir``."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir

    def batch_committed(
        self,
        accounts: Mapping[str, Any],
        seconds: float,
        segments: Sequence[Any],
        newest: Mapping[str, pa.Table],
    ) -> None:
        record_batch(dict(accounts), seconds, segments, dict(newest), self.data_dir)

    def segment_unreadable(self, segment: Any, reason: str) -> None:
        record_unreadable(segment.source, self.data_dir)


def record_unreadable(source: str, data_dir: Path | None = None) -> None:
    """Count a landing file moved aside as unreadable (alerting rules watch the counter)."""
    try:
        UNREADABLE.labels(source=source).inc()
        _export(data_dir)
    except Exception:
        log.exception("could not record processor metrics")


# A textfile is written at most this often (seconds). Rendering the registry costs a few
# ms of CPU, and ``process --follow`` commits a batch every second or faster, for months;
# a scrape (every 15 s or more) sees a file at most this much behind.
EXPORT_EVERY = 1.0


class _Textfile:
    """The processor's textfile at one path: written at once when the last write is
    ``EXPORT_EVERY`` old, else once when that time is up (a timer), and at exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.written = -math.inf  # monotonic time of the last write
        self.timer: threading.Timer | None = None  # the write waiting for its turn

    def export(self) -> None:
        with self.lock:
            if self.timer is not None:
                return  # the write already waiting will see this batch's counts
            wait = self.written + EXPORT_EVERY - time.monotonic()
            if wait > 0:
                self.timer = threading.Timer(wait, self.flush)
                self.timer.daemon = True
                self.timer.start()
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write()

    def flush(self) -> None:
        """Write now if a write is waiting."""
        with self.lock:
            if self.timer is None:
                return
            self.timer.cancel()
            if not self.path.parent.is_dir():  # the data dir was removed meanwhile (a
                self.timer = None  # test's, a bench's): not made again at exit
                return
            try:
                self._write()
            except Exception:
                log.exception("could not write the processor's metrics")

    def _write(self) -> None:
        self.timer = None
        self.written = time.monotonic()
        write_to_textfile(str(self.path), PROCESSOR)


_textfiles: dict[Path, _Textfile] = {}
_textfiles_lock = threading.Lock()


def flush_textfiles() -> None:
    """Write every processor textfile whose write is waiting (at exit, at a stop)."""
    with _textfiles_lock:
        waiting = list(_textfiles.values())
    for textfile in waiting:
        textfile.flush()


atexit.register(flush_textfiles)


def _export(data_dir: Path | None) -> None:
    """Write the processor's metrics where the collector's /metrics picks them up (at
    most every ``EXPORT_EVERY`` seconds, see :class:`_Textfile`)."""
    if data_dir is not None:
        path = Path(data_dir) / "monitor" / "processor.prom"
        with _textfiles_lock:
            textfile = _textfiles.get(path) or _textfiles.setdefault(path, _Textfile(path))
        textfile.export()


def _record_batch(
    accounts: dict[str, Any], seconds: float, segments: list[Any], tables: dict[str, pa.Table]
) -> None:
    import pyarrow.compute as pc

    from advertisex.landing.zone import segment_time

    now = utcnow()
    BATCHES.inc()
    BATCH_SECONDS.observe(seconds)
    for source, a in accounts.items():
        for outcome, count in (
            ("accepted", a.accepted),
            ("quarantined", a.quarantined),
            ("filtered", a.filtered),
            ("duplicate", a.duplicates),
        ):
            ROWS.labels(source, outcome).inc(count)
        CONFLICTS.labels(source).inc(a.conflicts)
        LAST_COMMIT.labels(source).set(now.timestamp())
        landed = [segment_time(s) for s in segments if s.source == source]
        if landed:
            INGEST_DELAY.labels(source).observe((now - min(landed)).total_seconds())
    for name, table in tables.items():
        fed = TABLE_SOURCE.get(name)
        if fed is None or table.num_rows == 0 or "event_time" not in table.column_names:
            continue
        newest: datetime | None = pc.max(table.column("event_time")).as_py()
        if newest is not None and newest.timestamp() > _newest.get(fed, 0.0):
            _newest[fed] = newest.timestamp()
            LAST_EVENT.labels(fed).set(newest.timestamp())
            EVENT_LAG.labels(fed).set((now - newest).total_seconds())


def record_observations(obs: Any, alerts: list[dict[str, Any]]) -> None:
    """Set the monitor's gauges from one evaluation's observations and current alerts."""
    import pyarrow.compute as pc

    EVALUATIONS.inc()
    LAST_EVALUATION.set(obs.now.timestamp())
    arrivals = obs.arrivals
    for source in obs.sources:
        rows = arrivals.filter(pc.equal(arrivals.column("source"), source))
        last = pc.max(rows.column("last_landed_at")).as_py() if rows.num_rows else None
        if last is not None:
            FRESHNESS.labels(source).set((obs.now - last).total_seconds())
        BACKLOG.labels(source).set(pc.sum(rows.column("pending")).as_py() or 0)
        BACKLOG_BYTES.labels(source).set(pc.sum(rows.column("pending_bytes")).as_py() or 0)
    lag = obs.marts
    MARTS_BEHIND.value = (
        None
        if lag is None
        else 0.0
        if lag.unfolded_since is None
        else (obs.now - lag.unfolded_since).total_seconds()
    )
    for state in ("pending", "firing"):
        for severity in ("critical", "warning", "info"):
            n = sum(a["state"] == state and a.get("severity") == severity for a in alerts)
            ALERTS.labels(state, severity).set(n)


class _TextfileCollector(Collector):
    """Re-exposes metric families written to a textfile by another process."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[Any]:
        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return
        yield from text_string_to_metric_families(text)


class FollowerPasses(Collector):
    """How the running follower's passes go, read from its health file (``util.health``)
    at each scrape: a follower failing every pass commits nothing, so nothing of it reached
    the processor's textfile, which is written after a commit. Nothing is exposed while no
    follower runs (none started, stopped, or killed: ``monitor.gather.follower_health``)."""

    def __init__(self, settings: Settings | None) -> None:
        self.settings = settings

    def describe(self) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        return [
            GaugeMetricFamily(
                "advertisex_processor_failed_passes",
                "Passes the running follower has failed in a row (0 once one succeeds).",
            ),
            GaugeMetricFamily(
                "advertisex_processor_good_pass_age_seconds",
                "Seconds since the running follower's last pass that succeeded (since it "
                "started, while none has).",
            ),
        ]

    def collect(self) -> Iterator[Any]:
        from advertisex.monitor.gather import follower_health

        failed, age = self.describe()
        if self.settings is None:
            return
        now = utcnow()
        health = follower_health(self.settings, now)
        if health is None:
            return
        failed.add_metric([], health.failures)
        yield failed
        since = health.last_success or health.started
        if since is not None:
            age.add_metric([], max((now - since).total_seconds(), 0.0))
            yield age


def exposition_registry(data_dir: Path, settings: Settings | None = None) -> CollectorRegistry:
    """The monitor's gauges plus the processor's textfile, as one registry to serve; with
    ``settings``, also the running follower's passes (:class:`FollowerPasses`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Union(MONITOR))
    registry.register(_TextfileCollector(Path(data_dir) / "monitor" / "processor.prom"))
    registry.register(FollowerPasses(settings))
    return registry


class _Union(Collector):
    def __init__(self, inner: CollectorRegistry) -> None:
        self.inner = inner

    def collect(self) -> Iterator[Any]:
        yield from self.inner.collect()


def serve(
    port: int, data_dir: Path, addr: str = "127.0.0.1", settings: Settings | None = None
) -> Any:
    """Serve ``/metrics`` on ``addr:port`` in a daemon thread; returns the server."""
    from prometheus_client import start_http_server

    registry = exposition_registry(data_dir, settings)
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server
