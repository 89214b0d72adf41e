"""What the tracking endpoints share: settings, keys, visitors, metrics, and landing a record.

Every tracking record lands through :meth:`Tracking.land`: the collector's capacity
check, then the source's segment writer — the same group-commit ``fdatasync`` as the
batch endpoints, awaited before the answer — and one count per endpoint and outcome.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Histogram

from advertisex.collector.responses import ApiError
from advertisex.collector.service import Collector
from advertisex.collector.tracking import records
from advertisex.collector.tracking.signing import Keys
from advertisex.collector.tracking.visitor import Visitors

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class TrackingMetrics:
    """Per endpoint: requests by outcome, and time to answer (landed requests only).

    A pixel or a click is a few microseconds of work of its own, so the labelled series
    it touches are looked up once and kept (``labels()`` costs more than ``inc()``).
    """

    def __init__(self, collector: Collector) -> None:
        self._source = collector.metrics
        self._children: dict[tuple[Any, ...], Any] = {}
        registry = collector.metrics.registry
        self.requests = Counter(
            "advertisex_collector_endpoint_requests",
            "Tracking and delivery requests by endpoint (pixel, click, postback, "
            "firehose_http) and outcome: accepted, replayed, prefetch, head or an error code.",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "advertisex_collector_endpoint_latency_seconds",
            "From request arrival to its answer, for requests whose record was made durable.",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=registry,
        )

    def child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def landed(self, source: str, size: int) -> None:
        """The per-source series the batch endpoints keep: one accepted record of ``size``."""
        self.child(self._source.requests, source, "accepted").inc()
        self.child(self._source.events, source, "accepted").inc()
        self.child(self._source.bytes, source, "accepted").inc(size)


class Tracking:
    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        settings = collector.settings
        self.config = t = settings.collector.tracking
        self.visitors = Visitors(settings)
        self.click_keys = Keys(t.click_secret, t.campaign_secrets)
        self.postback_keys = Keys(t.postback_secret, {})
        self.metrics = TrackingMetrics(collector)

    async def land(self, source: str, record: Mapping[str, Any]) -> None:
        """Return once ``record`` is durable in a ``source`` segment; ApiError (503) if not."""
        data = records.line(record)
        self.collector.check_capacity()
        await self.collector.store(source, "ndjson", data)
        self.metrics.landed(source, len(data))

    def count(self, endpoint: str, outcome: str, started: float | None = None) -> None:
        metrics = self.metrics
        metrics.child(metrics.requests, endpoint, outcome).inc()
        if started is not None:
            metrics.child(metrics.latency, endpoint).observe(time.perf_counter() - started)

    def refused(self, endpoint: str, source: str, error: ApiError) -> None:
        self.count(endpoint, error.code)
        self.collector.count(source, error.code, 0, 0)
