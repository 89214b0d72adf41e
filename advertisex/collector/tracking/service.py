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
    """Per endpoint: requests by outcome, and time to answer (landed requests only)."""

    def __init__(self, collector: Collector) -> None:
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
        self.collector.count(source, "accepted", 1, len(data))

    def count(self, endpoint: str, outcome: str, started: float | None = None) -> None:
        self.metrics.requests.labels(endpoint, outcome).inc()
        if started is not None:
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

    def refused(self, endpoint: str, source: str, error: ApiError) -> None:
        self.count(endpoint, error.code)
        self.collector.count(source, error.code, 0, 0)
