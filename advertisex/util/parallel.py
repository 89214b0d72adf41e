"""Work over files on every usable core, results in order and few held at once."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from advertisex.util.cores import usable_cores

T = TypeVar("T")
R = TypeVar("R")


# Items at once by default, however many cores: each holds a file's worth (an erasure's
# look at a compacted day holds its user and text columns), and Arrow reads and writes each
# file on several threads already — on a 32-core host, 32 files at once would hold 32 days.
MOST_AT_ONCE = 4


def in_order(
    function: Callable[[T], R], items: Iterable[T], workers: int | None = None
) -> Iterator[R]:
    """``function`` of each of ``items``, in their order, computed by ``workers`` threads
    (default: the usable cores, at most :data:`MOST_AT_ONCE`) — for work that leaves the GIL
    (Parquet, zlib, Arrow's kernels). At most ``workers`` results are computed ahead of the
    one asked for, so what they hold stays bounded however many items there are (``map`` of
    an executor submits them all at once). An error is raised where its item's result is
    asked for."""
    workers = workers or min(usable_cores(), MOST_AT_ONCE)
    source = iter(items)
    if workers <= 1:
        yield from map(function, source)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="adx-in-order") as pool:
        pending: deque[Future[R]] = deque(
            pool.submit(function, i) for i in itertools.islice(source, workers)
        )
        try:
            while pending:
                result = pending.popleft().result()
                for item in source:  # one more in its place, if any is left
                    pending.append(pool.submit(function, item))
                    break
                yield result
        finally:
            for future in pending:  # stopped early: what has not started never does
                future.cancel()
