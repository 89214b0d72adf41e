"""The log notifier (always available) and the in-memory notifier tests and simulations use."""

from __future__ import annotations

import logging
import threading
from typing import Any

from advertisex.config import ChannelSettings
from advertisex.monitor.notify.base import DeliveryError, Notifier, text

log = logging.getLogger("advertisex.alerts")


class LogNotifier(Notifier):
    """Writes each message to the ``advertisex.alerts`` logger (stderr under the CLI)."""

    kind = "log"

    def render(self, message: dict[str, Any]) -> str:
        return text(message)

    def send(self, message: dict[str, Any]) -> None:
        level = logging.WARNING if message["status"] == "firing" else logging.INFO
        log.log(level, "%s", self.render(message))


class MemoryNotifier(Notifier):
    """Keeps messages in a list; ``fail_next`` makes the next N sends fail (outage drills)."""

    kind = "memory"

    def __init__(self, name: str, settings: ChannelSettings | None = None) -> None:
        super().__init__(name, settings or ChannelSettings(kind="memory"))
        self.sent: list[dict[str, Any]] = []
        self.attempts = 0
        self.fail_next = 0
        self._lock = threading.Lock()

    def render(self, message: dict[str, Any]) -> dict[str, Any]:
        return message

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.attempts += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                raise DeliveryError(f"{self.name}: simulated outage")
            self.sent.append(self.render(message))
