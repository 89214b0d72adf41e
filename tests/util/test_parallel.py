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
