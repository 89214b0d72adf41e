"""The one retry policy (tenacity underneath): what it retries, how long it waits."""

from __future__ import annotations

import pytest

from advertisex.errors import CatalogUnavailableError, UserInputError
from advertisex.util.retry import backoff, delay, retrying


def test_transient_failures_are_retried_with_doubling_waits() -> None:
    waits: list[float] = []
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise CatalogUnavailableError("locked")
        return "done"

    assert retrying(flaky, sleep=waits.append) == "done"
    assert waits == [0.2, 0.4, 0.8]


def test_the_last_failure_is_raised_as_it_was_and_bugs_are_not_retried() -> None:
    waits: list[float] = []

    def always() -> None:
        raise CatalogUnavailableError("locked")

    with pytest.raises(CatalogUnavailableError):
        retrying(always, attempts=3, sleep=waits.append)
    assert len(waits) == 2

    def wrong() -> None:
        raise UserInputError("bad")

    with pytest.raises(UserInputError):
        retrying(wrong, sleep=waits.append)
    assert len(waits) == 2  # not retried


def test_backoff_doubles_up_to_its_cap_and_jitter_stays_below_it() -> None:
    assert [delay(backoff(1.0, 10.0), n) for n in range(1, 6)] == [1, 2, 4, 8, 10]
    assert all(0 <= delay(backoff(0.1, 5.0, jitter=True), n) <= 5.0 for n in range(1, 20))
