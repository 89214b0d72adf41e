"""``Idempotency-Key``: answer a retried request from memory instead of storing it twice.

Kept in process (bounded LRU with a TTL), on the event loop, so no locks: a retry
that arrives while the first attempt is still being written waits for that attempt's
answer. Only successes are remembered — an error is answered again, so the retry does
the work once the cause is gone. A restart forgets the keys; retries across a restart
are still deduplicated downstream by event id, like any re-sent batch. With several
worker processes (``serve --workers``), :class:`SharedIdempotency` keeps the same
promises across them in a SQLite table.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advertisex.errors import UserInputError
from advertisex.util import jsonutil
from advertisex.util.sqlite import open_shared


@dataclass(frozen=True)
class Stored:
    status: int
    body: bytes
    media_type: str
    headers: dict[str, str] | None = None


class KeyReused(UserInputError):
    """The same key came with a different body: most likely a client bug, never a retry."""

    code = "idempotency_key_reused"
    http_status = 422

    def __init__(self, key: str) -> None:
        super().__init__(
            "this Idempotency-Key was used for a different body; use a new key per batch"
        )
        self.key = key


@dataclass
class _Entry:
    fingerprint: bytes
    expires: float
    answer: asyncio.Future[Stored]


class IdempotencyCache:
    def __init__(self, ttl_seconds: float, max_keys: int) -> None:
        self.ttl, self.max_keys = ttl_seconds, max_keys
        self._entries: OrderedDict[tuple[str, ...], _Entry] = OrderedDict()

    async def run(
        self, key: tuple[str, ...], fingerprint: bytes, produce: Callable[[], Awaitable[Stored]]
    ) -> tuple[Stored, bool]:
        """The answer for ``key`` and whether it was replayed from memory."""
        key = held(key)
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry.expires < now and entry.answer.done():
            del self._entries[key]
            entry = None
        if entry is not None:
            if entry.fingerprint != fingerprint:
                raise KeyReused(key[-1])
            self._entries.move_to_end(key)
            return await asyncio.shield(entry.answer), True

        answer: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._entries[key] = _Entry(fingerprint, now + self.ttl, answer)
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)
        try:
            stored = await produce()
        except BaseException as error:
            self._forget(key, answer)
            answer.set_exception(error)
            answer.exception()  # retrieved: concurrent waiters (if any) re-raise it themselves
            raise
        if not 200 <= stored.status < 300:
            self._forget(key, answer)
        answer.set_result(stored)
        return stored, False

    def _forget(self, key: tuple[str, ...], answer: asyncio.Future[Stored]) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.answer is answer:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class Reloads:
    """The pixel's reload memory: ids landed lately, with the fingerprint of what landed.

    Lighter than :class:`IdempotencyCache` (no answer to keep, no future to wait on), for
    the hottest path: a reload seen here is answered without landing again; two copies
    of one impression in flight at once both land, and the processor's dedupe keeps one.

    >>> memory = Reloads(60, 2)
    >>> memory.remember("i-1", b"a"); memory.seen("i-1", b"a"), memory.seen("i-1", b"b")
    (True, False)
    """

    def __init__(self, ttl_seconds: float, max_keys: int) -> None:
        self.ttl, self.max_keys = ttl_seconds, max_keys
        self._landed: OrderedDict[str, tuple[Hashable, float]] = OrderedDict()

    def seen(self, key: str, fingerprint: Hashable) -> bool:
        found = self._landed.get(key)
        if found is None or found[0] != fingerprint:
            return False
        if found[1] < time.monotonic():
            del self._landed[key]
            return False
        return True

    def remember(self, key: str, fingerprint: Hashable) -> None:
        self._landed[key] = (fingerprint, time.monotonic() + self.ttl)
        if len(self._landed) > self.max_keys:
            self._landed.popitem(last=False)


class SharedIdempotency:
    """The same memory, shared by the worker processes of one collector (``serve --workers``).

    A retry may reach any worker (the kernel spreads connections over them), so the keys
    live in one SQLite table in WAL mode beside the collector's lock. A key is claimed by
    inserting its row (pending, owned by this worker); the answer is written into it on
    success, the row deleted on failure. Another worker's retry that finds a pending row
    waits for it to settle — or to vanish (the first attempt failed, or its worker died
    and the supervisor cleared its claims), and then does the work itself. SQLite runs on
    a thread, never on the event loop: a busy lock waits there. The table is a cache, so
    it is not fsync'd (``synchronous=OFF``); whatever it forgets, the processor's dedupe
    by event id still catches.
    """

    _POLL = 0.005

    def __init__(self, path: Path, ttl_seconds: float, max_keys: int, owner: str) -> None:
        self.path, self.ttl, self.max_keys, self.owner = path, ttl_seconds, max_keys, owner
        self._local = threading.local()
        self._claims = 0

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = open_store(self.path)
        return db

    async def run(
        self, key: tuple[str, ...], fingerprint: bytes, produce: Callable[[], Awaitable[Stored]]
    ) -> tuple[Stored, bool]:
        """The answer for ``key`` and whether it was replayed (by this or another worker)."""
        name = "\x1f".join(held(key))
        while True:
            found = await asyncio.to_thread(self._claim, name, fingerprint)
            if found is None:
                break  # claimed: ours to produce
            if found[0] != fingerprint:
                raise KeyReused(key[-1])
            if found[1] is not None:
                return _stored(found), True
            await asyncio.sleep(self._POLL)  # another attempt is in flight
        try:
            stored = await produce()
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self._release, name))
            raise
        if 200 <= stored.status < 300:
            await asyncio.to_thread(self._settle, name, stored)
        else:
            await asyncio.to_thread(self._release, name)
        return stored, False

    def _claim(self, name: str, fingerprint: bytes) -> tuple[Any, ...] | None:
        """None when this worker now owns ``name``; else the row found (fingerprint, answer…)."""
        db, now = self._db(), time.time()
        with db:
            db.execute("DELETE FROM answers WHERE key = ? AND expires < ? AND status IS NOT NULL",
                       (name, now))  # fmt: skip
            claimed = db.execute(
                "INSERT INTO answers (key, fingerprint, expires, owner) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (name, fingerprint, now + self.ttl, self.owner),
            ).rowcount
            if claimed:
                self._claims += 1
                if self._claims % 1024 == 0:
                    self._trim(db, now)
                return None
            row = db.execute(
                "SELECT fingerprint, status, body, media_type, headers FROM answers WHERE key = ?",
                (name,),
            ).fetchone()
        return tuple(row) if row is not None else (fingerprint, None)

    def _trim(self, db: sqlite3.Connection, now: float) -> None:
        db.execute("DELETE FROM answers WHERE expires < ? AND status IS NOT NULL", (now,))
        db.execute(
            "DELETE FROM answers WHERE key IN (SELECT key FROM answers WHERE status IS NOT NULL "
            "ORDER BY expires DESC LIMIT -1 OFFSET ?)",
            (self.max_keys,),
        )

    def _settle(self, name: str, stored: Stored) -> None:
        headers = jsonutil.dumps(stored.headers) if stored.headers else None
        with self._db() as db:
            db.execute(
                "UPDATE answers SET status = ?, body = ?, media_type = ?, headers = ? "
                "WHERE key = ? AND owner = ?",
                (stored.status, stored.body, stored.media_type, headers, name, self.owner),
            )

    def _release(self, name: str) -> None:
        with self._db() as db:
            db.execute(
                "DELETE FROM answers WHERE key = ? AND owner = ? AND status IS NULL",
                (name, self.owner),
            )


_KEPT_CHARACTERS = 128  # a longer part of a key is remembered as its digest


def held(key: tuple[str, ...]) -> tuple[str, ...]:
    """``key`` as it is remembered: a part longer than 128 characters as its SHA-256.

    The producer chooses the key, as long as its headers may be (64 KiB): kept whole, the
    100,000 keys remembered could hold 6 GiB.
    """
    return tuple(
        part
        if len(part) <= _KEPT_CHARACTERS
        else "sha256:" + hashlib.sha256(part.encode("utf-8", "surrogatepass")).hexdigest()
        for part in key
    )


def open_store(path: Path) -> sqlite3.Connection:
    """The shared answers table (made on first use)."""
    db = open_shared(path)
    db.isolation_level = "DEFERRED"  # `with db:` commits one transaction per call
    db.execute(
        "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, fingerprint BLOB NOT NULL, "
        "expires REAL NOT NULL, owner TEXT NOT NULL, status INTEGER, body BLOB, "
        "media_type TEXT, headers BLOB)"
    )
    return db


def release_claims(path: Path, owner: str | None = None) -> None:
    """Drop the pending claims of ``owner`` (a worker that died), or of everyone (at start)."""
    db = open_store(path)
    try:
        with db:
            if owner is None:
                db.execute("DELETE FROM answers WHERE status IS NULL")
            else:
                db.execute("DELETE FROM answers WHERE status IS NULL AND owner = ?", (owner,))
    finally:
        db.close()


def _stored(row: tuple[Any, ...]) -> Stored:
    _, status, body, media, headers = row
    return Stored(status, body, media, jsonutil.loads(headers) if headers else None)
