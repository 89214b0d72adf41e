"""Back-pressure: refuse with 503 before the disk fills or the processor falls too far behind.

Checking free space or the processor's progress on every request would cost syscalls
and catalog queries in the hot path; a background thread refreshes the figures twice a
second and a request only reads two numbers. Backlog means sealed landing bytes the
processor has not committed yet: measured once over the whole landing zone at start,
then kept current from this collector's own seals and the processor's checkpoint rows
(read through the lake's :class:`~advertisex.lake.catalog.SegmentLedger`).
"""

from __future__ import annotations

import itertools
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from advertisex.errors import AdvertiseXError
from advertisex.lake.catalog import SegmentLedger
from advertisex.landing.zone import LandingZone

log = logging.getLogger("advertisex.collector")
_CHUNK = 500  # outstanding segment names looked up at a time


class Capacity:
    """Free disk, unprocessed backlog and unflushed bytes, against their configured bounds."""

    def __init__(
        self,
        zone: LandingZone,
        catalog_uri: str,
        *,
        min_free_bytes: int,
        max_backlog_bytes: int,
        max_pending_bytes: int,
        pending_bytes: Callable[[], int],
        interval: float = 0.5,
        done_interval: float = 2.0,
    ) -> None:
        self.zone, self.catalog_uri = zone, catalog_uri
        self.min_free_bytes, self.max_backlog_bytes = min_free_bytes, max_backlog_bytes
        self.max_pending_bytes, self._pending_bytes = max_pending_bytes, pending_bytes
        self._interval, self._done_every = interval, max(1, round(done_interval / interval))
        self._outstanding: dict[
            str, int
        ] = {}  # sealed, not yet known to be processed; oldest first
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ledger: SegmentLedger | None = None
        self.backlog_bytes = 0
        self.disk_free_bytes = shutil.disk_usage(self._existing(zone.root)).free
        self._thread = threading.Thread(target=self._run, name="collector-capacity", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def sealed(self, name: str, size: int) -> None:
        """A writer sealed a segment: it is backlog until the processor commits it."""
        with self._lock:
            if name not in self._outstanding:
                self._outstanding[name] = size
                self.backlog_bytes += size

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes()

    def refusal(self) -> tuple[str, str] | None:
        """``(code, message)`` when the collector must not take more data now, else None."""
        if self.disk_free_bytes < self.min_free_bytes:
            return (
                "disk_full",
                f"only {self.disk_free_bytes >> 20} MiB free under the landing zone "
                f"(minimum {self.min_free_bytes >> 20} MiB); retry later",
            )
        if self.backlog_bytes > self.max_backlog_bytes:
            return (
                "backlog_full",
                f"{self.backlog_bytes} bytes landed but not yet processed (bound "
                f"{self.max_backlog_bytes}); the processor is behind, retry later",
            )
        if self.pending_bytes > self.max_pending_bytes:
            return ("overloaded", "too many bytes waiting to be written; retry later")
        return None

    # ------------------------------------------------------------------ background thread
    def _run(self) -> None:
        self._scan_existing()
        for tick in itertools.count(1):
            if self._stop.wait(self._interval):
                return
            try:
                self.disk_free_bytes = shutil.disk_usage(self._existing(self.zone.root)).free
                if tick % self._done_every == 0:
                    self._forget_done()
            except Exception:  # a transient failure must not stop the probe
                log.exception("capacity probe failed; keeping the previous figures")

    def _scan_existing(self) -> None:
        """Start from the true backlog: every sealed segment the processor has not committed."""
        try:
            for segment in self.zone.segments():
                self.sealed(segment.name, segment.size)
            self._forget_done(everything=True)
        except Exception:
            log.exception("cannot measure the landing backlog at start; counting from zero")

    def _forget_done(self, everything: bool = False) -> None:
        """Drop outstanding segments the processor has committed.

        The processor takes segments in arrival order, so in steady state checking the
        oldest chunk, and going on only while it was entirely done, keeps queries small.
        """
        if everything:
            with self._lock:
                names = list(self._outstanding)
            for i in range(0, len(names), _CHUNK):
                self._drop(self._done_among(names[i : i + _CHUNK]))
            return
        while True:
            with self._lock:
                chunk = list(itertools.islice(self._outstanding, _CHUNK))
            done = self._done_among(chunk) if chunk else set()
            self._drop(done)
            if not done or len(done) < len(chunk):
                return

    def _drop(self, done: set[str]) -> None:
        with self._lock:
            for name in done:
                self.backlog_bytes -= self._outstanding.pop(name, 0)

    def _done_among(self, names: list[str]) -> set[str]:
        if self._ledger is None:
            self._ledger = SegmentLedger.open(self.catalog_uri)
            if self._ledger is None:
                return set()  # nothing processed yet; the catalog is not even created
        try:
            return self._ledger.names(among=names)
        except AdvertiseXError:  # the database is busy: ask again at the next tick
            return set()

    @staticmethod
    def _existing(path: Path) -> Path:
        while not path.exists() and path.parent != path:
            path = path.parent
        return path
