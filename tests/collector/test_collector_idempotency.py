"""The Idempotency-Key memory shared by the workers of one collector (a SQLite table)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from advertisex.collector.idempotency import (
    KeyReused,
    SharedIdempotency,
    Stored,
    release_claims,
)

OK = Stored(200, b'{"accepted":3}', "application/json", {"X-Batch": "1"})


def workers(tmp_path: Path) -> tuple[SharedIdempotency, SharedIdempotency]:
    path = tmp_path / "idempotency.sqlite3"
    return SharedIdempotency(path, 60, 100, "w0"), SharedIdempotency(path, 60, 100, "w1")


def test_a_retry_at_another_worker_is_replayed_and_a_reused_key_refused(tmp_path: Path) -> None:
    first, second = workers(tmp_path)
    produced: list[str] = []

    async def produce(who: str) -> Stored:
        produced.append(who)
        return OK

    async def scenario() -> None:
        assert await first.run(("k", "impressions", "a"), b"body", lambda: produce("w0")) == (
            OK,
            False,
        )
        assert await second.run(("k", "impressions", "a"), b"body", lambda: produce("w1")) == (
            OK,
            True,
        )
        with pytest.raises(KeyReused):
            await second.run(("k", "impressions", "a"), b"other", lambda: produce("w1"))

    asyncio.run(scenario())
    assert produced == ["w0"]


def test_a_retry_racing_the_first_attempt_waits_for_its_answer(tmp_path: Path) -> None:
    first, second = workers(tmp_path)
    release = asyncio.Event()
    produced: list[str] = []

    async def slow() -> Stored:
        produced.append("w0")
        await release.wait()
        return OK

    async def fast() -> Stored:
        produced.append("w1")
        return OK

    async def scenario() -> tuple[tuple[Stored, bool], tuple[Stored, bool]]:
        one = asyncio.ensure_future(first.run(("k",), b"body", slow))
        # Until the first attempt holds the claim: its claim runs on a thread, and on a
        # loaded machine it took longer than the fixed 0.2 s slept here (the second won it).
        for _ in range(6000):
            if produced:
                break
            await asyncio.sleep(0.01)
        assert produced == ["w0"], "the first attempt did not claim the key within 60 s"
        two = asyncio.ensure_future(second.run(("k",), b"body", fast))
        await asyncio.sleep(0.2)
        assert not two.done()  # waiting for the first attempt's answer
        release.set()
        return await one, await two

    assert asyncio.run(scenario()) == ((OK, False), (OK, True))
    assert produced == ["w0"]


def test_errors_and_a_dead_workers_claims_are_not_remembered(tmp_path: Path) -> None:
    first, second = workers(tmp_path)
    refused = Stored(503, b'{"code":"disk_full"}', "application/json")

    async def answer(stored: Stored) -> Stored:
        return stored

    async def scenario() -> None:
        assert await first.run(("e",), b"b", lambda: answer(refused)) == (refused, False)
        assert await second.run(("e",), b"b", lambda: answer(OK)) == (OK, False)
        # A claim whose worker died mid-request: the supervisor drops it, a retry works.
        assert first._claim("d", b"b") is None
        release_claims(tmp_path / "idempotency.sqlite3", "w0")
        assert await second.run(("d",), b"b", lambda: answer(OK)) == (OK, False)

    asyncio.run(scenario())


@pytest.mark.parametrize("shared", [False, True], ids=["one-worker", "workers"])
def test_a_long_key_is_remembered_as_its_digest(tmp_path: Path, shared: bool) -> None:
    # The producer picks the key, up to the 64 KiB of its headers: 100,000 of them kept
    # whole could hold 6 GiB of the collector's memory.
    from advertisex.collector.idempotency import IdempotencyCache

    memory = workers(tmp_path)[0] if shared else IdempotencyCache(60, 100)
    long_key, other = "k" * 60_000, "k" * 59_999 + "j"

    async def produce() -> Stored:
        return OK

    async def scenario() -> list[bool]:
        return [
            (await memory.run(("k", "impressions", key), body, produce))[1]
            for key, body in [(long_key, b"a"), (long_key, b"a"), (other, b"b")]
        ]

    assert asyncio.run(scenario()) == [False, True, False]
    if shared:
        db = memory._db()
        assert max(len(k) for (k,) in db.execute("SELECT key FROM answers")) < 100
    else:
        assert max(len(k[-1]) for k in memory._entries) < 100
