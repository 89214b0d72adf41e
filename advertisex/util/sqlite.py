"""SQLite files that several processes share (the collector's workers), opened one way.

``PRAGMA journal_mode=WAL`` needs a moment of exclusive access the first time, and
SQLite answers "database is locked" at once — without its busy handler — while another
connection holds that moment or replays the write-ahead log after a crash. Two workers
starting together, or a worker's second thread opening its connection under load, hit
it (a README tour on a busy machine did). So the switch is retried until the same
``timeout`` a locked write would wait.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any


def open_shared(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection in WAL mode, not fsync'd (these files are caches, rebuilt at start),
    autocommit until the caller opens a transaction."""
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        execute_while_locked(db, "PRAGMA journal_mode=WAL", timeout)
    except BaseException:
        db.close()
        raise
    db.execute("PRAGMA synchronous=OFF")
    return db


def execute_while_locked(db: Any, statement: str, timeout: float) -> None:
    """Run ``statement``, trying again while SQLite says the file is locked or busy (for
    at most ``timeout`` seconds, pauses doubling from 1 ms to 50 ms); any other error at
    once."""
    deadline, pause = time.monotonic() + timeout, 0.001
    while True:
        try:
            db.execute(statement)
            return
        except sqlite3.OperationalError as error:
            if not ("locked" in str(error) or "busy" in str(error)):
                raise
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
