"""Run a follower in a test: the first pass that fails ends it, and its error fails the test.

A follower outlives a failing pass by design (it backs off and tries again, for as long as
it runs), so a test that stops it only from a success callback (``on_batch``,
``on_marts``, ``on_maintain``) waited forever when every pass failed: a typo in a kernel
that every batch hit held three such tests until pytest-timeout ended each, 300 s apiece,
and a run of the runner tests passed 15 minutes. Use it as::

    follower = Follower(ax.runner, interval=0.01)
    run_follower(follower, on_batch, on_marts=updates.append)

A test about the retries themselves passes its own ``on_retry`` to ``Follower.run``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from advertisex.runners.follow import Follower


def run_follower(
    follower: Follower, on_batch: Callable[[Any], None] = lambda batch: None, **told: Any
) -> int:
    """``follower.run(on_batch, **told)`` until it stops, or until a pass (or a scheduled
    maintenance run) fails: then it is stopped and that error is raised here, with its own
    traceback. Returns the number of batches committed."""
    failed: list[Exception] = []

    def on_retry(error: Exception, wait: float) -> None:  # a batch's pass, or maintenance's
        failed.append(error)
        follower.stop.set()

    committed = follower.run(on_batch, on_retry=on_retry, **told)
    if failed:
        raise failed[0]
    return committed
