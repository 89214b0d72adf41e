"""A follower's health, where any process can read it: ``<data_dir>/processor/health.json``.

A follower that fails every pass only logs a retry line; the monitor runs in another
process (``advertisex up`` starts them apart) and would see nothing but a growing
backlog until the ingest delay bound (15 min) is crossed. So the follower writes, after
every pass and every committed batch, who it is and how its passes went: the monitor's
``processor`` check (``monitor.checks.processor``) and ``status`` read it. Written
whole to a temporary file and renamed, so a reader never sees half of one. A follower
that stops marks the file ``stopped``: nothing is judged of a processor that is not
running, and a cron-style ``process`` run never writes one. One SIGKILLed cannot mark it:
whether its writer still runs is asked of the lake's processor lock (:func:`lock_holder`),
which the operating system lets go with the process — not of its pid, which the system
may give to another process meanwhile.

Writing it never stops processing: a disk too full for it is the disk's alert. It lives
in ``util`` because its writer (the runners) and its reader (the monitor) may not import
each other.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from advertisex.errors import AdvertiseXError
from advertisex.util import jsonutil
from advertisex.util.text import shown
from advertisex.util.timeutil import Clock, utcnow

HEALTH_FILE = Path("processor") / "health.json"
# The processor lock (``runners.lock``): a processor holds an flock on it while it runs,
# and writes "pid N on HOST since …" in it.
LOCK_FILE = "processor.lock"
_LONGEST = 1000  # characters kept of an error's message or hint
# An idle follower passes every ``interval`` (0.5 s): its file is rewritten at most this
# often while nothing changes, far inside what ProcessorStuck allows.
_QUIET_SECONDS = 5.0


def health_path(data_dir: Path) -> Path:
    return data_dir / HEALTH_FILE


class HealthFile:
    """What one follower writes about itself; each method rewrites the file."""

    def __init__(
        self, data_dir: Path, *, interval: float, max_wait: float, clock: Clock = utcnow
    ) -> None:
        self.path = health_path(data_dir)
        self.clock = clock
        now = clock()
        self._written = 0.0  # monotonic time of the last write
        self.state: dict[str, Any] = {
            "state": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": now,
            "updated": now,
            "interval_seconds": interval,
            "max_wait_seconds": max_wait,  # its longest sleep: an idle look or a back-off
            "last_pass": None,
            "last_success": None,
            "failures": 0,  # passes failed in a row
            "failing_since": None,
            "error": None,
            "hint": None,
        }
        self._write()

    def beat(self) -> None:
        """A batch committed inside a long pass: the follower is not hung."""
        if time.monotonic() - self._written >= _QUIET_SECONDS:
            self._write()

    def passed(self) -> None:
        now = self.clock()
        changed = self.state["failures"] > 0
        self.state.update(
            last_pass=now, last_success=now, failures=0, failing_since=None, error=None, hint=None
        )
        if changed or time.monotonic() - self._written >= _QUIET_SECONDS:
            self._write(now)

    def failed(self, error: BaseException) -> None:
        now = self.clock()
        self.state.update(
            last_pass=now,
            failures=self.state["failures"] + 1,
            failing_since=self.state["failing_since"] or now,
            **error_line(error),
        )
        self._write(now)

    def stopped(self) -> None:
        self.state["state"] = "stopped"
        self._write()

    def _write(self, now: datetime | None = None) -> None:
        self.state["updated"] = now or self.clock()
        self._written = time.monotonic()
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(jsonutil.dumps(self.state, indent=True))
            os.replace(temporary, self.path)
        except OSError:
            temporary.unlink(missing_ok=True)


def error_line(error: BaseException) -> dict[str, str | None]:
    """What the CLI's ``error:`` line says of ``error`` (its message, its hint), never a
    traceback: an unexpected error is its type and first line. Control characters are
    written as escapes: an error may quote what a producer sent, and the monitor's log
    channel and ``status`` show it on a terminal."""
    if isinstance(error, AdvertiseXError):
        message, hint = error.message, error.hint
    else:
        lines = str(error).strip().splitlines()
        message, hint = f"{type(error).__name__}: {lines[0] if lines else ''}", None
    return {
        "error": shown(message[:_LONGEST]),
        "hint": shown(hint[:_LONGEST]) if hint else None,
    }


def read_health(data_dir: Path) -> dict[str, Any] | None:
    """The follower's last written health, or None when no follower ever wrote one (or
    the file is not one it wrote)."""
    try:
        data = jsonutil.loads(health_path(data_dir).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "state" in data else None


def lock_holder(data_dir: Path, lock_file: str = LOCK_FILE) -> str | None:
    """Who holds the lake's processor lock (or ``lock_file``) now, as its file says (``pid
    123 on host since …``), or None when no process holds it. The lock is an ``flock``,
    which the system lets go when its holder exits however it exits: a shared lock tried
    without waiting says whether a live holder exists (in this process too: another
    descriptor's lock counts)."""
    path = data_dir / lock_file
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # never made: no processor ever ran here
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            return path.read_text().strip() or "pid unknown"
        except (OSError, UnicodeDecodeError):
            return "pid unknown"
    finally:
        os.close(fd)  # a shared lock taken for the look is let go with the descriptor
    return None


def held_by(holder: str | None, pid: int, host: str) -> bool:
    """Whether the lock's ``holder`` (:func:`lock_holder`) is process ``pid`` on ``host``."""
    return holder is not None and holder.startswith(f"pid {pid} on {host} ")
