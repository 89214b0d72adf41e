"""Back-pressure: refuse with 503 before the disk fills or the processor falls too far behind.

Checking free space or the processor's progress on every request would cost syscalls
and catalog queries in the hot path; a background thread refreshes the figures twice a
second and a request only reads two numbers. Backlog means sealed landing bytes the
processor has not committed yet: measured once over the whole landing zone at start,
then kept current from this collector's own seals and the processor's checkpoint rows
(read through the lake's :class:`~advertisex.lake.catalog.SegmentLedger`). The worker
processes of one collector (``serve --workers``) keep their outstanding segments in one
SQLite table (:class:`SharedOutstanding`), so each sees the seals of all.
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
from advertisex.util.sqlite import open_shared

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
        shared: Path | None = None,
    ) -> None:
        self.zone, self.catalog_uri = zone, catalog_uri
        self.min_free_bytes, self.max_backlog_bytes = min_free_bytes, max_backlog_bytes
        self.max_pending_bytes, self._pending_bytes = max_pending_bytes, pending_bytes
        self._interval, self._done_every = interval, max(1, round(done_interval / interval))
        # sealed, not yet known to be processed; oldest first
        self._outstanding: Outstanding | SharedOutstanding = (
            SharedOutstanding(shared) if shared else Outstanding()
        )
        self._stop = threading.Event()
        self._ledger: SegmentLedger | None = None
        self.on_tick: Callable[[], None] | None = None  # after each refresh, on the probe thread
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
        self.backlog_bytes = self._outstanding.add(name, size)

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
                self.backlog_bytes = self._outstanding.total()
                if self.on_tick is not None:
                    self.on_tick()
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
            names = self._outstanding.oldest(None)
            for i in range(0, len(names), _CHUNK):
                self._drop(self._done_among(names[i : i + _CHUNK]))
            return
        while True:
            chunk = self._outstanding.oldest(_CHUNK)
            done = self._done_among(chunk) if chunk else set()
            self._drop(done)
            if not done or len(done) < len(chunk):
                return

    def _drop(self, done: set[str]) -> None:
        if done:
            self.backlog_bytes = self._outstanding.drop(done)

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


class Outstanding:
    """Sealed segments not yet known to be processed (name → bytes), oldest first."""

    def __init__(self) -> None:
        self._sizes: dict[str, int] = {}
        self._total = 0
        self._lock = threading.Lock()

    def add(self, name: str, size: int) -> int:
        """Count ``name`` (once); the backlog in bytes after it."""
        with self._lock:
            if name not in self._sizes:
                self._sizes[name] = size
                self._total += size
            return self._total

    def oldest(self, count: int | None) -> list[str]:
        with self._lock:
            return list(itertools.islice(self._sizes, count))

    def drop(self, names: set[str]) -> int:
        with self._lock:
            for name in names:
                self._total -= self._sizes.pop(name, 0)
            return self._total

    def total(self) -> int:
        return self._total


class SharedOutstanding:
    """:class:`Outstanding` in a SQLite table the workers of one collector share (a seal
    is a row: about one a second per source and worker, off the request path)."""

    def __init__(self, path: Path) -> None:
        self._db = open_shared(path)  # not fsync'd: rebuilt from the landing zone at start
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outstanding (seq INTEGER PRIMARY KEY, "
            "name TEXT UNIQUE NOT NULL, size INTEGER NOT NULL)"
        )
        self._lock = threading.Lock()

    def add(self, name: str, size: int) -> int:
        with self._lock:
            self._db.execute(
                "INSERT INTO outstanding (name, size) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (name, size),
            )
            return self._sum()

    def oldest(self, count: int | None) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name FROM outstanding ORDER BY seq LIMIT ?", (count or -1,)
            ).fetchall()
        return [name for (name,) in rows]

    def drop(self, names: set[str]) -> int:
        with self._lock:
            self._db.executemany(
                "DELETE FROM outstanding WHERE name = ?", [(name,) for name in names]
            )
            return self._sum()

    def total(self) -> int:
        with self._lock:
            return self._sum()

    def _sum(self) -> int:
        return int(self._db.execute("SELECT coalesce(sum(size), 0) FROM outstanding").fetchone()[0])
