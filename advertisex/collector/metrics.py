"""The collector's Prometheus metrics, in a registry of its own (one per app instance).

Names follow Prometheus conventions: ``advertisex_collector_`` prefix, base units
(seconds, bytes), ``_total`` on counters. ``outcome`` is ``accepted`` or the stable
error code, so an alert on ``outcome!="accepted"`` sees every refusal.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class CollectorMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
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
        self.backlog = Gauge(
            "advertisex_collector_backlog_bytes",
            "Sealed landing bytes not yet processed.",
            registry=r,
        )
        self.pending = Gauge(
            "advertisex_collector_pending_bytes",
            "Bytes received and queued, not yet fsync'd.",
            registry=r,
        )
        self.disk_free = Gauge(
            "advertisex_collector_disk_free_bytes", "Free space under the landing zone.", registry=r
        )

    def observe_commit(self, source: str, seconds: float, requests: int) -> None:
        self.fsync.labels(source).observe(seconds)
        self.group_size.labels(source).observe(requests)

    def observe_sealed(self, name: str, size: int) -> None:
        source = name.split("/", 1)[0]
        self.sealed.labels(source).inc()
        self.sealed_bytes.labels(source).inc(size)

    def bind_gauges(
        self, backlog: Callable[[], float], pending: Callable[[], float], free: Callable[[], float]
    ) -> None:
        """Gauges read the live figures when scraped, never a stale copy."""
        self.backlog.set_function(backlog)
        self.pending.set_function(pending)
        self.disk_free.set_function(free)

    def render(self) -> bytes:
        return generate_latest(self.registry)
