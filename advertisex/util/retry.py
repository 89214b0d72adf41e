"""One retry policy, on tenacity: wait a first delay, double it up to a cap, try again.

Only failures that trying again can fix are retried — by default
:class:`advertisex.errors.TransientError` and OS-level I/O errors; anything else is
raised at once: retrying a bug only hides it.

- :func:`retrying` runs an action under the policy (tenacity's ``Retrying``);
- :func:`backoff` is the policy's wait strategy, for loops that wait between passes (the
  follower), honour a server's ``Retry-After`` (the traffic streamer) or schedule the next
  try instead of sleeping (the notification outbox), with :func:`delay` to read it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

from advertisex.errors import CommitConflictError, TransientError

T = TypeVar("T")
log = logging.getLogger("advertisex.retry")


def backoff(
    first: float, maximum: float = 60.0, *, jitter: bool = False
) -> tenacity.wait.wait_base:
    """Wait ``first``, then twice as long each time, never more than ``maximum``; with
    ``jitter`` a random wait up to that (so many clients do not retry in step).

    >>> [delay(backoff(0.2), n) for n in (1, 2, 3)]
    [0.2, 0.4, 0.8]
    >>> delay(backoff(1, maximum=30), 10)
    30.0
    """
    if jitter:
        return tenacity.wait_random_exponential(multiplier=first, max=maximum)
    return tenacity.wait_exponential(multiplier=first, max=maximum)


def delay(wait: tenacity.wait.wait_base, retry: int) -> float:
    """How long ``wait`` waits before retry number ``retry`` (1 = the first retry)."""
    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    state.attempt_number = retry
    return wait(state)


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

    def warn(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        # A commit that lost a race to another writer (maintenance beside the processor,
        # `report refresh` beside `process`) is the normal course of sharing a lake, not a
        # fault: a log's detail. Printed as a warning, with no logging set up, it reached the
        # terminal in the library's words, though the retry then succeeded.
        lost_race = isinstance(state.outcome.exception(), CommitConflictError)
        log.log(
            logging.INFO if lost_race else logging.WARNING,
            "%s failed (%s); retry %d/%d in %.1f s",
            what,
            state.outcome.exception(),
            state.attempt_number,
            attempts - 1,
            state.next_action.sleep,
        )

    policy = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=backoff(first_delay),
        retry=tenacity.retry_if_exception_type(retry_on),
        before_sleep=warn,
        sleep=sleep,
        reraise=True,
    )
    return policy(action)
