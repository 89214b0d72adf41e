"""Retry with exponential backoff, for failures that trying again can fix.

What counts as transient is the caller's choice (``retry_on``); by default that is
:class:`advertisex.errors.TransientError` and OS-level I/O errors. Anything else is
raised at once: retrying a bug only hides it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from advertisex.errors import TransientError

T = TypeVar("T")
log = logging.getLogger("advertisex.retry")


def retrying(
    action: Callable[[], T],
    *,
    attempts: int = 4,
    first_delay: float = 0.2,
    retry_on: tuple[type[BaseException], ...] = (TransientError, OSError),
    what: str = "operation",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action``; on a ``retry_on`` error wait 0.2 s, 0.4 s, 0.8 s … and try again.

    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise OSError("busy")
    ...     return "done"
    >>> retrying(flaky, sleep=lambda s: None), len(calls)
    ('done', 3)
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except retry_on as error:
            if attempt == attempts:
                raise
            log.warning(
                "%s failed (%s); retry %d/%d in %.1f s", what, error, attempt, attempts - 1, delay
            )
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
