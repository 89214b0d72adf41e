"""The collector's Prometheus metrics, in a registry of its own (one per app instance).

Names follow Prometheus conventions: ``advertisex_collector_`` prefix, base units
(seconds, bytes), ``_total`` on counters. ``outcome`` is ``accepted`` or the stable
error code, so an alert on ``outcome!="accepted"`` sees every refusal.

With several worker processes (``serve --workers``) prometheus_client's multiprocess
mode sums them: each worker's counters and histograms live in memory-mapped files of
a directory the supervisor owns, and whichever worker is scraped reads them all. The
live gauges are read when scraped, as in one process: backlog and free disk are the
landing zone's (the same in every worker); pending bytes are set by each worker's
capacity probe and summed over the live workers.
"""

from __future__ import annotations

import bisect
import os
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_shared_metrics(directory: Path) -> None:
    """Make every metric created from now on in this process (a worker) write to
    ``directory``, where the others' are summed from. Called once, before any metric."""
    from prometheus_client import values

    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()


class CollectorMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, shared: Path | None = None) -> None:
        """``shared``: the multiprocess directory, in a worker (see :func:`use_shared_metrics`)."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.shared = shared
        if not self.shared:
            ProcessCollector(registry=r)  # one process's figures mean nothing summed
        self.requests = Counter(
            "advertisex_collector_requests",
            "Intake requests by source and outcome.",
            ["source", "outcome"],
            registry=r,
        )
        self.events = Counter(
            "advertisex_collector_events",
            "Records received, by source and outcome.",
            ["source", "outcome"],
            registry=r,
        )
        self.bytes = Counter(
            "advertisex_collector_received_bytes",
            "Request body bytes (as sent), by source and outcome.",
            ["source", "outcome"],
            registry=r,
        )
        self.ack_latency = Histogram(
            "advertisex_collector_ack_latency_seconds",
            "From request arrival to its acknowledgement (data fsync'd), accepted requests only.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fsync = Histogram(
            "advertisex_collector_fsync_seconds",
            "Write plus fsync of one commit group.",
            ["source"],
            buckets=_FSYNC_BUCKETS,
            registry=r,
        )
        self.group_size = Histogram(
            "advertisex_collector_commit_group_requests",
            "Requests made durable by one fsync.",
            ["source"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.sealed = Counter(
            "advertisex_collector_segments_sealed",
            "Landing segments sealed (handed to the processor).",
            ["source"],
            registry=r,
        )
        self.sealed_bytes = Counter(
            "advertisex_collector_sealed_bytes",
            "Bytes in sealed landing segments.",
            ["source"],
            registry=r,
        )
        self.replays = Counter(
            "advertisex_collector_idempotent_replays",
            "Requests answered from the Idempotency-Key memory instead of being stored again.",
            registry=r,
        )
        self.pending = Gauge(
            "advertisex_collector_pending_bytes",
            "Bytes received and queued, not yet fsync'd.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._live = _LiveGauges()
        if not self.shared:
            r.register(self._live)
        # Commit groups not yet added to their histograms: (source, seconds, requests).
        self._commits: deque[tuple[str, float, int]] = deque()

    def observe_commit(self, source: str, seconds: float, requests: int) -> None:
        """One commit group, from a writer thread: queued, and added to the histograms by
        :meth:`flush_commits` (once a second and before a scrape, see
        :class:`~advertisex.collector.tracking.service.TrackingMetrics`).

        A group is a few milliseconds apart from the next; updating two labelled
        histograms in a worker's memory-mapped files cost 5–11 µs each time, with the GIL
        held by the writer thread while the event loop waited for it. A deque's append and
        popleft are atomic, so the writer and the flush need no lock."""
        self._commits.append((source, seconds, requests))
        if len(self._commits) > _MAX_QUEUED_COMMITS:  # nobody flushes (no app): keep bounded
            self.flush_commits()

    def flush_commits(self) -> None:
        """Add the queued commit groups to the fsync and group-size histograms in bulk."""
        seconds: dict[str, list[float]] = {}
        sizes: dict[str, list[float]] = {}
        commits = self._commits
        while commits:
            try:
                source, took, requests = commits.popleft()
            except IndexError:  # another thread flushed the last one meanwhile
                break
            seconds.setdefault(source, []).append(took)
            sizes.setdefault(source, []).append(requests)
        for source, values in seconds.items():
            observe_all(self.fsync.labels(source), values)
            observe_all(self.group_size.labels(source), sizes[source])

    def observe_sealed(self, name: str, size: int) -> None:
        source = name.split("/", 1)[0]
        self.sealed.labels(source).inc()
        self.sealed_bytes.labels(source).inc(size)

    def bind_gauges(
        self, backlog: Callable[[], float], pending: Callable[[], float], free: Callable[[], float]
    ) -> None:
        """Gauges read the live figures when scraped, never a stale copy (a worker's pending
        bytes are the exception: summed over workers, each sets its own, see ``set_pending``)."""
        self._live.backlog, self._live.free = backlog, free
        if not self.shared:
            self.pending.set_function(pending)

    def set_pending(self, value: float) -> None:
        if self.shared:
            self.pending.set(value)

    def render(self) -> bytes:
        self.flush_commits()
        if not self.shared:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.shared)
        registry.register(self._live)
        return generate_latest(registry)


_MAX_QUEUED_COMMITS = 10_000  # ≈ 20 s of groups at one every 2 ms


def observe_all(histogram: Any, values: list[float]) -> None:
    """``histogram.observe(v)`` for each value, with one update per bucket and one to the sum
    (prometheus_client's own fields, as its ``observe`` uses them; plain ``observe`` if
    they ever move)."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1
    total.inc(sum(values))
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)


class _LiveGauges(Collector):
    """Backlog and free disk, read from the landing zone's figures when scraped."""

    def __init__(self) -> None:
        self.backlog: Callable[[], float] = lambda: 0.0
        self.free: Callable[[], float] = lambda: 0.0

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "advertisex_collector_backlog_bytes",
            "Sealed landing bytes not yet processed.",
            value=self.backlog(),
        )
        yield GaugeMetricFamily(
            "advertisex_collector_disk_free_bytes",
            "Free space under the landing zone.",
            value=self.free(),
        )
