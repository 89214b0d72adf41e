"""``Idempotency-Key``: answer a retried request from memory instead of storing it twice.

Kept in process (bounded LRU with a TTL), on the event loop, so no locks: a retry
that arrives while the first attempt is still being written waits for that attempt's
answer. Only successes are remembered — an error is answered again, so the retry does
the work once the cause is gone. A restart forgets the keys; retries across a restart
are still deduplicated downstream by event id, like any re-sent batch.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from advertisex.errors import UserInputError


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
