"""How many console and API queries run at once over one data directory: in all the
processes serving its console together (each of ``serve --workers N``'s, ``advertisex
console``), not in each.

``console.query_memory_bytes`` is shared among ``console.query_concurrency`` queries
(``ConsoleSettings.query_share_bytes``), so the budget holds for all of them only if no more
run at once than that, whichever process answers them. A running query holds one slot: an
exclusive ``flock`` on one of the files ``<data_dir>/console/query-slot-<i>``. The kernel
drops a process's locks however it ends, so a server killed mid-query frees its slot. Each
open file is a lock of its own, so two threads of one process take two slots; a thread
first waits for a slot of its process's without polling (one process has no more threads
running queries than there are slots).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from advertisex.errors import QueriesBusyError

log = logging.getLogger("advertisex.console")
_POLL_SECONDS = 0.05  # how often a query waiting for another process's slot looks again


class QuerySlots:
    """``count`` slots for queries over the data directory whose slot files are in
    ``directory``."""

    def __init__(self, directory: Path, count: int) -> None:
        self.directory, self.count = directory, count
        self._local = threading.BoundedSemaphore(count)
        self._shared = True  # False once the slot files could not be made: this process only

    @contextmanager
    def held(self, wait: float) -> Iterator[None]:
        """One slot while the block runs, waiting at most ``wait`` seconds for it
        (``queries_busy`` when none comes free)."""
        deadline = time.monotonic() + wait
        if not self._local.acquire(timeout=wait):
            raise self._busy()
        try:
            fd = self._take(deadline)
            try:
                yield
            finally:
                if fd is not None:
                    os.close(fd)  # the lock goes with the descriptor
        finally:
            self._local.release()

    def _take(self, deadline: float) -> int | None:
        """The descriptor of a slot file this holds locked now; None where the files cannot
        be made (a data directory this process may not write: its own slots only)."""
        while self._shared:
            for slot in range(self.count):
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
                return fd
            else:
                if time.monotonic() >= deadline:
                    raise self._busy()
                time.sleep(_POLL_SECONDS)
        return None

    def _busy(self) -> QueriesBusyError:
        return QueriesBusyError(
            f"{self.count} queries are running already (console.query_concurrency, in all the "
            "processes serving this lake's console)",
            hint="try again in a moment, or raise console.query_concurrency (each query then "
            "gets a smaller share of console.query_memory_bytes)",
        )
