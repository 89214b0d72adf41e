"""The collector's moving parts, assembled from settings and started/stopped as one.

:class:`Collector` owns the segment writers (one per source and container format), the
capacity probe, the key ring, the idempotency memory and the metrics. The HTTP layer
only asks it to authorize, to check capacity and to store framed bytes.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
from collections.abc import Callable, Mapping

from advertisex.collector.access import KeyRing, Principal, is_loopback, presented_key
from advertisex.collector.capacity import Capacity
from advertisex.collector.framing import Framed, decode_body, frame_gzipped_avro
from advertisex.collector.idempotency import IdempotencyCache
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


class Collector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = c = settings.collector
        self.collector_id = safe_collector_id(c.collector_id or f"{socket.gethostname()}-{c.port}")
        self.zone = LandingZone(settings.landing_dir)
        self.metrics = CollectorMetrics()
        self.keys = KeyRing(c.api_keys)
        self.idempotency = IdempotencyCache(c.idempotency_ttl_seconds, c.idempotency_max_keys)
        self.labels = Labels(self.collector_id)
        self.capacity = Capacity(
            self.zone,
            settings.catalog_uri,
            min_free_bytes=c.min_free_bytes,
            max_backlog_bytes=c.max_backlog_bytes,
            max_pending_bytes=c.max_pending_bytes,
            pending_bytes=self.pending_bytes,
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
        if self._lock_fd is not None:
            return
        directory = self.zone.root / "_collectors"
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / f"{self.collector_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserInputError(
                f"another collector with id {self.collector_id!r} is running on {self.zone.root}",
                hint="stop it first, or give this one its own id (ADVERTISEX_COLLECTOR__COLLECTOR_ID)",
            ) from None
        self._lock_fd = fd

    def start(self) -> None:
        """Seal what a previous run of this collector left open, then start writing."""
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
        inflating gzip happens on a thread; plain NDJSON and CSV are framed in place
        (about a microsecond a line). Raises :class:`FramingError`.
        """
        limit = self.config.max_decoded_bytes
        if fmt == "avro":
            return await asyncio.to_thread(self._frame_avro, body, encoding)
        if (encoding or "identity").strip().lower() not in ("identity", ""):
            return await asyncio.to_thread(lambda: framer(decode_body(body, encoding, limit)))
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
        return sum(w.pending_bytes for w in self.writers.values())

    def count(self, source: str, outcome: str, records: int, size: int) -> None:
        """One request's outcome in the metrics: ``accepted`` or the error code."""
        m = self.metrics
        m.requests.labels(source, outcome).inc()
        if records:
            m.events.labels(source, outcome).inc(records)
        if size:
            m.bytes.labels(source, outcome).inc(size)
