"""The outbox: messages wait in the state store until their channel takes them.

Evaluation only *enqueues* (one SQLite insert per channel), so a slow or dead channel
never holds up monitoring or the pipeline. :meth:`Delivery.drain` sends what is due;
a failure is retried with exponential backoff (``retry_base_seconds`` doubling up to
``retry_max_seconds``) until ``retry_max_age_seconds``, then marked failed (kept, for
``status``). Messages of one channel leave in order: while its oldest message waits for
a retry, the newer ones wait behind it. :meth:`start` runs ``drain`` on a background
thread; tests and ``monitor --once`` call ``drain`` directly.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from advertisex.config import MonitorSettings
from advertisex.monitor.notify.base import Notifier
from advertisex.monitor.state import StateStore
from advertisex.util.retry import backoff, delay
from advertisex.util.timeutil import Clock, utcnow

log = logging.getLogger("advertisex.monitor")


class Delivery:
    def __init__(
        self,
        store: StateStore,
        notifiers: dict[str, Notifier],
        cfg: MonitorSettings,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.cfg = cfg
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_lock = threading.Lock()

    def submit(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for each channel it is routed to; returns at once."""
        now = self.clock()
        for channel in message.get("channels", ()):
            self.store.enqueue(channel, message, now)
        self._wake.set()

    def drain(self) -> int:
        """Try every due message once; returns how many were delivered."""
        with self._drain_lock:
            now = self.clock()
            blocked: set[str] = set()
            delivered = 0
            for row in self.store.pending():
                if row.channel in blocked:
                    continue
                if row.next_at > now:
                    blocked.add(row.channel)
                    continue
                notifier = self.notifiers.get(row.channel)
                if notifier is None:
                    self.store.mark(row.id, failed_at=now, error="no such channel configured")
                    continue
                try:
                    notifier.send(row.payload)
                except Exception as error:
                    blocked.add(row.channel)
                    self._retry_later(row.id, row.attempts, row.created_at, now, str(error))
                    continue
                self.store.mark(row.id, delivered_at=now)
                delivered += 1
            return delivered

    def _retry_later(
        self, row_id: int, attempts: int, created: datetime, now: datetime, error: str
    ) -> None:
        if (now - created).total_seconds() > self.cfg.retry_max_age_seconds:
            log.error("giving up on a notification after %d attempts: %s", attempts + 1, error)
            self.store.mark(row_id, failed_at=now, error=error)
            return
        wait = delay(backoff(self.cfg.retry_base_seconds, self.cfg.retry_max_seconds), attempts + 1)
        log.warning("notification not delivered (%s); retrying in %.0f s", error, wait)
        self.store.mark(row_id, retry_at=now + timedelta(seconds=wait), error=error)

    # ------------------------------------------------------------ background
    def start(self, poll_seconds: float = 1.0) -> None:
        """Deliver on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return

        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.drain()
                except Exception:  # never let the delivery thread die
                    log.exception("notification delivery failed")
                self._wake.wait(poll_seconds)
                self._wake.clear()

        self._thread = threading.Thread(target=run, name="advertisex-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for notifier in self.notifiers.values():
            notifier.close()
