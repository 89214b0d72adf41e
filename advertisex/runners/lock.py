"""One processor per lake at a time.

Two processors on one lake would both work through the same pending segments; the
catalog's segment marks stop the second from committing them again, but only after all
its work, as a ``commit_conflict``. So a processor (``process``, ``process --follow``,
``replay``, on either engine) holds an exclusive lock on ``<data_dir>/processor.lock``
while it runs: an advisory ``flock``, which the operating system releases when the holder
exits, however it exits, so a killed processor never leaves a stale lock behind. The file
says who holds it, for the message the next one prints. Processors on other machines that
share a catalog are kept apart by the catalog transaction alone (lake.catalog).

Maintenance (``maintain``, and the run ``up`` and ``process --follow`` schedule) holds
``<data_dir>/maintenance.lock`` the same way, but never waits for it: two runs at once each
skipped what the other changed (a table the other was compacting left for the next run, its
error recorded), so the second says who holds it and leaves the lake to the first. It is not
re-entrant, not even within one process: the follower's scheduled run and one asked for on
the console are two runs.

``forget`` and a landing ``replay`` hold ``<data_dir>/erasure.lock`` for their whole run,
and the second of them refuses, before it changes anything. A replay takes its batches'
rows out and processes their landing segments again: one that read a user's records
before ``forget`` rewrote them committed the rows after it, however long ``forget`` waited
for it (its backlog of days outlasted the wait, and ``forget`` only warned). Two erasures
at once each rewrote the same landing file from what it read, the second putting back the
records the first removed. Taken before the processor lock (a replay waiting for it holds
no processor ``forget`` would wait for).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from advertisex.errors import (
    ErasureBusyError,
    MaintenanceBusyError,
    ProcessorBusyError,
    StorageError,
)
from advertisex.util.health import LOCK_FILE, lock_holder
from advertisex.util.storage import os_reason
from advertisex.util.timeutil import utcnow

MAINTENANCE_LOCK_FILE = "maintenance.lock"
ERASURE_LOCK_FILE = "erasure.lock"
_SINCE = " since "

_held: dict[Path, tuple[int, int]] = {}  # lock path → (fd, depth) held by this process
_guard = threading.Lock()


@contextlib.contextmanager
def processor_lock(
    data_dir: Path,
    *,
    on_wait: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    poll_seconds: float = 0.5,
) -> Iterator[bool]:
    """Hold the lake's processor lock inside the block (re-entrant within one process).

    When another process holds it: without ``on_wait``, raise :class:`ProcessorBusyError`
    naming the holder; with ``on_wait``, call it once with the holder and wait until the
    lock is free or ``stop`` is set. Yields False if it gave up because of ``stop``.
    """
    path = (data_dir / LOCK_FILE).absolute()
    with _guard:
        if path in _held:
            fd, depth = _held[path]
            _held[path] = (fd, depth + 1)
            acquired = True
        else:
            acquired = False
    if not acquired:
        opened = _acquire(path, on_wait, stop, poll_seconds)
        if opened is None:
            yield False
            return
        with _guard:
            _held[path] = (opened, 1)
    try:
        yield True
    finally:
        with _guard:
            fd, depth = _held[path]
            if depth > 1:
                _held[path] = (fd, depth - 1)
            else:
                del _held[path]
                os.close(fd)  # closing the descriptor releases the flock


@contextlib.contextmanager
def maintenance_lock(data_dir: Path) -> Iterator[None]:
    """Hold the lake's maintenance lock inside the block; when another run holds it, raise
    :class:`MaintenanceBusyError` naming the holder (it does the work: nothing to wait for)."""

    def busy(holder: str) -> Exception:
        return MaintenanceBusyError(
            f"another maintain is running ({holder})",
            hint="it does what this run would: let it finish (a cron job can skip this run)",
        )

    with _held_or_refused(data_dir / MAINTENANCE_LOCK_FILE, "maintain", busy):
        yield


# What the holder of the erasure lock is doing, and what the refused one is told.
_ERASURE_WORDS = {
    "forget": "its batches would bring back rows the erasure removes",
    "replay": "replaying now would bring back rows the erasure removes",
}


@contextlib.contextmanager
def erasure_lock(data_dir: Path, what: str) -> Iterator[None]:
    """Hold the lake's erasure lock inside the block, for ``what`` (``"forget"`` or
    ``"replay"``); when another holds it, raise :class:`ErasureBusyError` saying which and
    what to do (see the module docstring)."""

    def busy(holder: str) -> Exception:
        running = holder.partition(":")[0] if ":" in holder else "forget or replay"
        why = "" if running == what else f": {_ERASURE_WORDS.get(what, '')}"
        return ErasureBusyError(
            f"{'another ' if running == what else 'a '}{running} is running on this lake "
            f"({holder.partition(': ')[2] or holder}){why}",
            hint=f"run the {what} again once it is done (nothing was "
            f"{'erased' if what == 'forget' else 'replayed'})",
        )

    # The holder's file names what it is doing (``forget: pid …``), for the refusal above.
    with _held_or_refused(data_dir / ERASURE_LOCK_FILE, what, busy, doing=f"{what}: "):
        yield


@contextlib.contextmanager
def _held_or_refused(
    path: Path, what: str, busy: Callable[[str], Exception], doing: str = ""
) -> Iterator[None]:
    """Hold the lock file ``path`` inside the block, never waiting: when another holds it,
    raise ``busy(holder)``. The file says who holds it (``doing`` first)."""
    fd = _open(path.absolute(), what)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise busy(_holder(path.absolute())) from None
    try:
        _say_holder(fd, doing)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def held_since(data_dir: Path, lock_file: str = LOCK_FILE) -> datetime | None:
    """Since when the lock is held, by this process or another (None: free). A holder whose
    file does not say is taken as holding it since ever (``datetime.min``)."""
    holder = lock_holder(data_dir, lock_file)
    if holder is None:
        return None
    try:
        since = holder.partition(_SINCE)[2]
        return datetime.strptime(since, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _open(path: Path, what: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:  # a folder of that name, a file it may not write
        raise StorageError(
            f"cannot take the {what} lock {path}: {os_reason(error)}",
            hint=f"remove {path} (or let this user write it): the lock is made anew, and "
            f"held only while a {what} runs",
        ) from None


def _say_holder(fd: int, doing: str = "") -> None:
    os.ftruncate(fd, 0)
    now = f"{utcnow():%Y-%m-%d %H:%M:%S} UTC"
    text = f"{doing}pid {os.getpid()} on {socket.gethostname()}{_SINCE}{now}\n"
    os.pwrite(fd, text.encode(), 0)


def _acquire(
    path: Path,
    on_wait: Callable[[str], None] | None,
    stop: threading.Event | None,
    poll_seconds: float,
) -> int | None:
    fd = _open(path, "processor")
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(path)
            if on_wait is None:
                os.close(fd)
                raise ProcessorBusyError(
                    f"another processor is running ({holder})",
                    hint="one processor per lake: wait for it to finish, or stop it first",
                ) from None
            if not told:
                on_wait(holder)
                told = True
            if stop is not None and stop.wait(poll_seconds):
                os.close(fd)
                return None
            if stop is None:
                threading.Event().wait(poll_seconds)
    _say_holder(fd)
    return fd


def _holder(path: Path) -> str:
    """Who holds the lock, as its file says (``pid 123 on host since …``)."""
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "pid unknown"


def processor_running(data_dir: Path) -> bool:
    """Whether a processor holds the lake's lock now (this process or another)."""
    path = (data_dir / LOCK_FILE).absolute()
    with _guard:
        if path in _held:
            return True
    return lock_holder(data_dir) is not None
