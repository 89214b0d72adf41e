"""util.parallel.in_order: results in order, few computed ahead, an error at its item."""

from __future__ import annotations

import threading
import time

import pytest

from advertisex.util.parallel import in_order


def test_results_come_in_order_with_few_computed_ahead() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def slow_first(n: int) -> int:
        with lock:
            started.append(n)
        time.sleep(0.05 if n == 0 else 0.001)  # the first finishes last
        return n * n

    results = []
    for n, result in enumerate(in_order(slow_first, range(40), workers=2)):
        results.append(result)
        with lock:  # at most two started past the one being handed over
            assert max(started) <= n + 2
    assert results == [n * n for n in range(40)]


def test_an_error_is_raised_at_its_item_and_nothing_more_starts() -> None:
    seen: list[int] = []

    def failing(n: int) -> int:
        seen.append(n)
        if n == 3:
            raise ValueError("three")
        return n

    got = []
    with pytest.raises(ValueError, match="three"):
        for result in in_order(failing, range(100), workers=2):
            got.append(result)
    assert got == [0, 1, 2] and max(seen) <= 5


def test_one_worker_is_a_plain_map() -> None:
    assert list(in_order(lambda n: n + 1, [1, 2, 3], workers=1)) == [2, 3, 4]


def test_many_cores_take_a_few_files_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each item holds a file's worth: 32 cores do not mean 32 files held at once."""
    from advertisex.util import parallel

    monkeypatch.setattr(parallel, "usable_cores", lambda: 32)
    running, most = 0, 0
    lock = threading.Lock()

    def held(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return n

    assert list(in_order(held, range(40))) == list(range(40))
    assert 1 < most <= parallel.MOST_AT_ONCE
