"""How many console and API queries run at once over one data directory, and how many query
workers are kept: in all the processes serving its console together (each of ``serve
--workers N``'s, ``advertisex console``), not in each.

``console.query_memory_bytes`` is shared among ``console.query_concurrency`` queries
(``ConsoleSettings.query_share_bytes``), so the budget holds for all of them only if no more
run at once than that, whichever process answers them. A running query holds one slot: an
exclusive ``flock`` on one of the files ``<data_dir>/console/query-slot-<i>``. The kernel
drops a process's locks however it ends, so a server killed mid-query frees its slot. Each
open file is a lock of its own, so two threads of one process take two slots; a thread
first waits for a slot of its process's without polling (one process has no more threads
running queries than there are slots).

A query's worker process outlives its query, for the next one (a new worker, forked with
what a query imports, costs the next query ≈ 10 ms of CPU more), and holds 120-250 MiB
meanwhile: so its process keeps the slot with it (``keep_seconds`` at most), and the worker
is only ever alive in a slot its process holds.
The budget then bounds the idle workers too. A kept slot goes back as soon as a query of
another process waits for one: a waiter holds a shared ``flock`` on
``<data_dir>/console/query-wanted``, and a process keeping slots looks for it every
:data:`_POLL_SECONDS`, then stops the longest-idle worker (``on_release``) and frees its slot.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from advertisex.errors import QueriesBusyError

log = logging.getLogger("advertisex.console")
_POLL_SECONDS = 0.05  # how often a query waiting for another process's slot looks again
_WANTED = "query-wanted"


class QuerySlots:
    """``count`` slots for queries over the data directory whose slot files are in
    ``directory``; a slot is kept ``keep_seconds`` after its query for the next one (or
    until another process waits for one), and ``on_release(slot)`` is called before a
    kept slot is given up (to stop the worker that idles in it)."""

    def __init__(
        self,
        directory: Path,
        count: int,
        *,
        keep_seconds: float = 0.0,
        on_release: Callable[[int], None] | None = None,
    ) -> None:
        self.directory, self.count, self.keep_seconds = directory, count, keep_seconds
        self._on_release = on_release or (lambda slot: None)
        self._local = threading.BoundedSemaphore(count)
        self._shared = True  # False once the slot files could not be made: this process only
        self._lock = threading.Lock()
        self._held: dict[int, int | None] = {}  # slot → its locked descriptor (None: local)
        self._kept: dict[int, float] = {}  # held slots no query runs in → since (monotonic)
        self._waiting = 0  # this process's queries waiting for another process's slot
        self._keeper: threading.Thread | None = None

    @contextmanager
    def held(self, wait: float) -> Iterator[int]:
        """One slot (its number) while the block runs, waiting at most ``wait`` seconds
        for it (``queries_busy`` when none comes free); kept afterwards as the class says."""
        deadline = time.monotonic() + wait
        if not self._local.acquire(timeout=wait):
            raise self._busy()
        try:
            slot = self._take(deadline)
            try:
                yield slot
            finally:
                self._keep(slot)
        finally:
            self._local.release()

    def kept(self) -> list[int]:
        """The slots this process keeps for the next query (no query running in them)."""
        with self._lock:
            return sorted(self._kept)

    def close(self) -> None:
        """Give up every kept slot now (their workers stopped)."""
        with self._lock:
            kept, self._kept = list(self._kept), {}
        for slot in kept:
            self._release(slot)

    def _take(self, deadline: float) -> int:
        """A slot for a query: one this process keeps (its worker warm), else a free one of
        the data directory's, waiting — and saying so to the processes keeping slots —
        until ``deadline``."""
        wanting: int | None = None
        try:
            while True:
                with self._lock:
                    if self._kept:  # the most recently used: its worker's memory is warmest
                        warm = max(self._kept, key=self._kept.__getitem__)
                        del self._kept[warm]
                        return warm
                free = self._lock_free()
                if free is not None:
                    return free
                if time.monotonic() >= deadline:
                    raise self._busy()
                if wanting is None:
                    wanting = self._want()
                    if wanting is not None:
                        with self._lock:
                            self._waiting += 1
                time.sleep(_POLL_SECONDS)
        finally:
            if wanting is not None:
                os.close(wanting)
                with self._lock:
                    self._waiting -= 1

    def _lock_free(self) -> int | None:
        """A slot no process holds, locked and recorded as this process's; None if none is."""
        if self._shared:
            for slot in range(self.count):
                if slot in self._held:  # this process's, running a query or being given up
                    continue
                try:
                    if slot == 0:
                        self.directory.mkdir(parents=True, exist_ok=True)
                    fd = os.open(
                        self.directory / f"query-slot-{slot}", os.O_RDWR | os.O_CREAT, 0o600
                    )
                except OSError as error:
                    log.warning(
                        "console queries are counted in this process only: %s (%s)",
                        error.strerror or error,
                        self.directory,
                    )
                    self._shared = False
                    break
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # held by another query, here or in another process
                    os.close(fd)
                    continue
                with self._lock:
                    self._held[slot] = fd
                return slot
            else:
                return None
        with self._lock:  # this process's slots only (one being given up: a moment more)
            free = set(range(self.count)) - set(self._held)
            if not free:
                return None
            slot = min(free)
            self._held[slot] = None
            return slot

    def _keep(self, slot: int) -> None:
        """``slot``'s query is over: keep the slot for the next one, or give it up."""
        if self.keep_seconds <= 0:
            self._release(slot)
            return
        with self._lock:
            self._kept[slot] = time.monotonic()
            if self._keeper is None:
                self._keeper = threading.Thread(
                    target=self._keep_watch, name="query-slots-keeper", daemon=True
                )
                self._keeper.start()

    def _keep_watch(self) -> None:
        """While slots are kept: give up those kept ``keep_seconds``, and the longest kept
        one whenever a query of another process waits for a slot."""
        while True:
            time.sleep(_POLL_SECONDS)
            with self._lock:
                if not self._kept:
                    self._keeper = None
                    return
                now = time.monotonic()
                due = [s for s, since in self._kept.items() if now - since >= self.keep_seconds]
                # A waiter of this process's takes a kept slot itself: the wish seen may be its.
                if not due and not self._waiting and self._wanted():
                    due = [min(self._kept, key=self._kept.__getitem__)]
                for slot in due:
                    del self._kept[slot]
            for slot in due:
                self._release(slot)

    def _release(self, slot: int) -> None:
        """Stop what idles in ``slot``, then unlock it: never a worker without its slot."""
        try:
            self._on_release(slot)
        finally:
            with self._lock:
                fd = self._held.pop(slot, None)
            if fd is not None:
                os.close(fd)  # the lock goes with the descriptor

    def _want(self) -> int | None:
        """A shared lock on the wish file while this waits for a slot (None: not said now,
        as the processes keeping slots are looking at it, or the file cannot be made)."""
        fd = self._wish_file()
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    def _wanted(self) -> bool:
        """Whether a query (of another process) waits for a slot: the wish file is locked.
        Another process's look at it at the same instant reads as a wish too, and costs a
        kept worker at most."""
        fd = self._wish_file()
        if fd is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)  # closing drops the probe's lock
        return False

    def _wish_file(self) -> int | None:
        """A descriptor of the wish file, opened (made) for a lock or a probe of one; None
        where the slot files cannot be made (this process's slots only)."""
        if not self._shared:
            return None
        try:
            return os.open(self.directory / _WANTED, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None

    def _busy(self) -> QueriesBusyError:
        return QueriesBusyError(
            f"{self.count} queries are running already (console.query_concurrency, in all the "
            "processes serving this lake's console)",
            hint="try again in a moment, or raise console.query_concurrency (each query then "
            "gets a smaller share of console.query_memory_bytes)",
        )
