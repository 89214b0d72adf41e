"""The collector's moving parts, assembled from settings and started/stopped as one.

:class:`Collector` owns the segment writers (one per source and container format), the
capacity probe, the key ring, the idempotency memory and the metrics. The HTTP layer
only asks it to authorize, to check capacity and to store framed bytes. In a worker
process of ``serve --workers`` (a :class:`WorkerSlot`), the supervisor holds the lock and
recovers segments; the worker names its segments with its own boot token and shares the
idempotency memory and the metrics with the other workers.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from advertisex.collector.access import KeyRing, Principal, is_loopback, presented_key
from advertisex.collector.capacity import Capacity
from advertisex.collector.framing import Framed, decode_body, frame_gzipped_avro
from advertisex.collector.idempotency import IdempotencyCache, Reloads, SharedIdempotency
from advertisex.collector.metrics import CollectorMetrics
from advertisex.collector.responses import unavailable
from advertisex.collector.segments import Labels, recover, safe_collector_id
from advertisex.collector.writer import FilePerRequestWriter, SegmentWriter, StorageError
from advertisex.config import Settings
from advertisex.errors import FramingError, UserInputError
from advertisex.formats.bounded import decode_pool
from advertisex.landing.detect import SOURCES
from advertisex.landing.zone import LandingZone
from advertisex.util.isolate import Budget, BudgetExceeded

log = logging.getLogger("advertisex.collector")
# A larger plain body is framed on a thread: a row costs little, but not every row counts
# towards max_records (4 MiB of blank CSV rows held the event loop for a second).
FRAMED_IN_PLACE_BYTES = 256 << 10


@dataclass(frozen=True)
class WorkerSlot:
    """One worker process of ``serve --workers``: its number, the boot token its segment
    names carry, and the supervisor's directory of shared state (idempotency, metrics)."""

    index: int
    boot: str
    shared: Path

    @property
    def idempotency_path(self) -> Path:
        return self.shared / "idempotency.sqlite3"

    @property
    def metrics_dir(self) -> Path:
        return self.shared / "metrics"


def collector_id(settings: Settings) -> str:
    c = settings.collector
    return safe_collector_id(c.collector_id or f"{socket.gethostname()}-{c.port}")


def hold_lock(zone: LandingZone, ident: str) -> int:
    """Take collector ``ident``'s lock on ``zone`` (a file descriptor to close), or refuse."""
    directory = zone.root / "_collectors"
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{ident}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserInputError(
            f"another collector with id {ident!r} is running on {zone.root}",
            hint="stop it first, or give this one its own id (ADVERTISEX_COLLECTOR__COLLECTOR_ID)",
        ) from None
    return fd


class Collector:
    def __init__(self, settings: Settings, worker: WorkerSlot | None = None) -> None:
        self.settings = settings
        self.config = c = settings.collector
        self.worker = worker
        self.collector_id = collector_id(settings)
        self.zone = LandingZone(settings.landing_dir)
        self.metrics = CollectorMetrics(worker.metrics_dir if worker else None)
        self.keys = KeyRing(c.api_keys)
        ttl, most = c.idempotency_ttl_seconds, c.idempotency_max_keys
        # Reloads of a pixel: remembered per process, on the hot path (no shared store);
        # a reload that reaches another worker lands again and the processor's dedupe drops it.
        self.reloads = Reloads(ttl, most)
        self.idempotency: IdempotencyCache | SharedIdempotency = (
            SharedIdempotency(worker.idempotency_path, ttl, most, owner=worker.boot)
            if worker
            else IdempotencyCache(ttl, most)
        )
        self.labels = Labels(self.collector_id, worker.boot if worker else None)
        self.capacity = Capacity(
            self.zone,
            settings.catalog_uri,
            min_free_bytes=c.min_free_bytes,
            max_backlog_bytes=c.max_backlog_bytes,
            max_pending_bytes=c.max_pending_bytes,
            pending_bytes=self.pending_bytes,
            shared=worker.shared / "outstanding.sqlite3" if worker else None,
        )
        self.writers: dict[tuple[str, str], SegmentWriter] = {}
        for source in SOURCES:
            self.writers[(source, "ndjson")] = self._writer(SegmentWriter, source, "ndjson")
        # Avro containers cannot be appended to one another: each body is its own segment.
        self.writers[("bids", "avro")] = self._writer(FilePerRequestWriter, "bids", "avro")
        self.metrics.bind_gauges(
            lambda: self.capacity.backlog_bytes,
            self.pending_bytes,
            lambda: self.capacity.disk_free_bytes,
        )
        if worker:  # summed over workers: each publishes its own twice a second
            self.capacity.on_tick = lambda: self.metrics.set_pending(self.pending_bytes())
        self.ready = False
        self.recovered: list[str] = []
        self._lock_fd: int | None = None

    def _writer(self, kind: type[SegmentWriter], source: str, fmt: str) -> SegmentWriter:
        return kind(
            self.zone,
            source,
            fmt,
            self.labels,
            max_bytes=self.config.segment_max_bytes,
            max_age=self.config.segment_max_age_seconds,
            fsync=self.config.fsync,
            on_sealed=self._sealed,
            observe=self.metrics.observe_commit,
            # without fsync a commit is only a write: nothing to spread out
            commit_interval=self.config.group_commit_seconds if self.config.fsync else 0.0,
        )

    def _sealed(self, name: str, size: int) -> None:
        self.capacity.sealed(name, size)
        self.metrics.observe_sealed(name, size)

    # ------------------------------------------------------------------ lifecycle
    def acquire(self) -> None:
        """Hold this collector id's lock on the landing zone, or refuse to run.

        Recovery seals the open files of "our" id; were a second process with the same id
        running, it would seal files the first is still appending to. The lock (released
        by the kernel when the process dies, even by SIGKILL) makes that impossible.
        """
        if self._lock_fd is None:
            self._lock_fd = hold_lock(self.zone, self.collector_id)

    def start(self) -> None:
        """Seal what a previous run of this collector left open, then start writing (a
        worker's supervisor did the first part, for all of its workers)."""
        if self.worker is None:
            self.acquire()
            self.recovered = recover(self.zone, self.collector_id, self._sealed)
            if self.recovered:
                log.warning("sealed %d segment(s) left open by a previous run", len(self.recovered))
        for writer in self.writers.values():
            writer.start()
        self.capacity.start()
        decode_pool().warm()  # Avro bodies are read in full by a decoder worker
        self.ready = True

    def stop(self) -> None:
        """Flush and seal every open segment; called after in-flight requests finished."""
        self.ready = False
        for writer in self.writers.values():
            writer.close(timeout=30)
        self.capacity.stop()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------------ requests
    def authorize(self, headers: Mapping[str, str], source: str) -> Principal:
        return self.keys.authorize(presented_key(headers), source)  # or AccessDenied

    def authorize_operations(self, headers: Mapping[str, str], client: str | None) -> None:
        """``/metrics`` and ``/readyz`` tell how the collector is doing: open on a loopback
        bind or to a loopback client, otherwise any valid API key (401 without one)."""
        if is_loopback(self.config.host) or (client is not None and is_loopback(client)):
            return
        self.keys.principal(presented_key(headers))  # serving off loopback needs keys

    def check_capacity(self) -> None:
        if not self.ready:
            raise unavailable("shutting_down", "the collector is not accepting data now", 1)
        refusal = self.capacity.refusal()
        if refusal:
            raise unavailable(*refusal, self.config.retry_after_seconds)

    async def frame(
        self, framer: Callable[[bytes], Framed], fmt: str, body: bytes, encoding: str | None
    ) -> Framed:
        """Frame ``body`` (after undoing ``encoding``) without stalling the event loop.

        Avro is read in full by a decoder worker process, under a time and memory budget;
        inflating gzip happens on a thread, and so does framing a plain body over
        ``FRAMED_IN_PLACE_BYTES``; smaller plain NDJSON and CSV are framed in place
        (about a microsecond a line). Raises :class:`FramingError`.
        """
        limit = self.config.max_decoded_bytes
        if fmt == "avro":
            return await asyncio.to_thread(self._frame_avro, body, encoding)
        if (encoding or "identity").strip().lower() not in ("identity", ""):
            return await asyncio.to_thread(lambda: framer(decode_body(body, encoding, limit)))
        if len(body) > FRAMED_IN_PLACE_BYTES:
            return await asyncio.to_thread(framer, body)
        return framer(body)

    def _frame_avro(self, body: bytes, encoding: str | None) -> Framed:
        config = self.config
        budget = Budget(config.avro_check_seconds, config.avro_check_memory_bytes)
        try:
            return decode_pool().run(
                budget, frame_gzipped_avro, body, encoding, config.max_decoded_bytes
            )
        except BudgetExceeded as breach:
            raise FramingError(
                "avro_invalid",
                f"the Avro body could not be read within the collector's budget ({breach.message}); "
                "nothing was stored",
            ) from None

    async def store(self, source: str, fmt: str, data: bytes) -> None:
        """Return once ``data`` is durable in a landing segment of ``source``."""
        try:
            await self.writers[(source, fmt)].append(data)
        except StorageError as error:
            raise unavailable(
                "storage_error", str(error), self.config.retry_after_seconds
            ) from None

    def pending_bytes(self) -> int:
        total = 0  # a plain loop: every pixel and click checks it (check_capacity)
        for writer in self.writers.values():
            total += writer.pending_bytes
        return total

    def count(self, source: str, outcome: str, records: int, size: int) -> None:
        """One request's outcome in the metrics: ``accepted`` or the error code."""
        m = self.metrics
        m.requests.labels(source, outcome).inc()
        if records:
            m.events.labels(source, outcome).inc(records)
        if size:
            m.bytes.labels(source, outcome).inc(size)
