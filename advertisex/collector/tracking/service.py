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

from advertisex.collector.metrics import observe_all
from advertisex.collector.responses import ApiError
from advertisex.collector.service import Collector
from advertisex.collector.tracking import records
from advertisex.collector.tracking.signing import Keys
from advertisex.collector.tracking.visitor import Visitors

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class TrackingMetrics:
    """Per endpoint: requests by outcome, and time to answer (landed requests only).

    A pixel or a click is a few microseconds of work of its own, while a Prometheus
    update is a locked write (in a worker of ``serve --workers``, into a memory-mapped
    file): one counter costs about 2 µs, one histogram observation 6. So a request only
    adds to plain dicts on the event loop, and :meth:`flush` — once a second, and before
    ``/metrics`` answers — adds them to the series in bulk: in one process a scrape sees
    every request; with several workers, the others' requests up to a second late.
    """

    def __init__(self, collector: Collector) -> None:
        self._source = collector.metrics
        self._children: dict[tuple[Any, ...], Any] = {}
        # Since the last flush: requests by (endpoint, outcome), answer times by endpoint,
        # [records, bytes] landed by source — keyed by plain strings, resolved at flush.
        self._requests: dict[tuple[str, str], int] = {}
        self._latencies: dict[str, list[float]] = {}
        self._landed: dict[str, list[int]] = {}
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

    def count(self, endpoint: str, outcome: str, seconds: float | None = None) -> None:
        """One request of ``endpoint`` with ``outcome``, answered in ``seconds`` if given."""
        key = (endpoint, outcome)
        self._requests[key] = self._requests.get(key, 0) + 1
        if seconds is not None:
            found = self._latencies.get(endpoint)
            if found is None:
                self._latencies[endpoint] = [seconds]
            else:
                found.append(seconds)

    def landed(self, source: str, size: int) -> None:
        """The per-source series the batch endpoints keep: one accepted record of ``size``."""
        found = self._landed.get(source)
        if found is None:
            self._landed[source] = [1, size]
        else:
            found[0] += 1
            found[1] += size

    def flush(self) -> None:
        """Add what was counted since the last flush to the Prometheus series (and the
        writers' commit groups queued since, :meth:`CollectorMetrics.flush_commits`)."""
        requests, self._requests = self._requests, {}
        latencies, self._latencies = self._latencies, {}
        landed, self._landed = self._landed, {}
        for (endpoint, outcome), count in requests.items():
            self.child(self.requests, endpoint, outcome).inc(count)
        for endpoint, values in latencies.items():
            observe_all(self.child(self.latency, endpoint), values)
        source = self._source
        for name, (count, size) in landed.items():
            self.child(source.requests, name, "accepted").inc(count)
            self.child(source.events, name, "accepted").inc(count)
            self.child(source.bytes, name, "accepted").inc(size)
        source.flush_commits()


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
        self.metrics.count(
            endpoint, outcome, None if started is None else time.perf_counter() - started
        )

    def refused(self, endpoint: str, source: str, error: ApiError) -> None:
        self.count(endpoint, error.code)
        self.collector.count(source, error.code, 0, 0)
