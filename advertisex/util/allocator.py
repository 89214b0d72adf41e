"""The C library's allocator, told to give large blocks back when they are freed.

glibc serves a request above its mmap threshold with a mapping of its own, returned to the
system on free. The threshold starts at 128 KiB but rises to the size of every such block
freed (up to 32 MiB), after which a batch's many 1-30 MB buffers (Arrow's, DuckDB's, the
decoders' texts) come from the heap, where freed memory stays with the process: the 10
M-event backlog's processor held 160-430 MiB freed but not returned at its peaks, in as
many arenas as it had threads. A fixed threshold and two arenas bound that.

Measured (``python bench/process.py --events 10000000 --skip-pandas``): the processor's
peak 1,402 -> 1,198-1,275 MiB, its tree 1,738 -> 1,570-1,608 MiB, its CPU 65.4 -> 64.8-66.7 s.

Arrow's own buffers come from its memory pool, mimalloc by default, which kept 300 MiB and
more of freed buffers resident at the backlog's peaks (its arena 437 MiB resident while
Arrow had 133 MiB allocated). jemalloc, also built into Arrow's Linux wheels, gives freed
pages back on a one-second decay: the processor's peak 1,188-1,262 -> 1,084-1,110 MiB at
the same speed. Purging at once (mimalloc's purge delay 0, jemalloc's decay 0) gave back
more and cost 10-17 % of the run (docs/benchmarks.md, "Arrow on jemalloc").
"""

from __future__ import annotations

import os
import sys

MMAP_THRESHOLD_BYTES = 4 << 20  # a block this big or bigger is mapped, and unmapped on free
ARENAS = 2  # this machine's cores; each thread's arena otherwise keeps its own free memory
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)
_done = False


def bound_held_memory() -> bool:
    """Set glibc's mmap threshold and arena count for this process, once, unless the user
    set them (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_ARENA_MAX``), and make jemalloc Arrow's
    pool (:func:`arrow_from_jemalloc`). True if glibc's were set here; False elsewhere than
    glibc on Linux, or when already done."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return False
    _done = True
    arrow_from_jemalloc()
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    changed = False
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        changed |= mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    if "MALLOC_ARENA_MAX" not in os.environ:
        changed |= mallopt(_M_ARENA_MAX, ARENAS) == 1
    return changed


ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def arrow_from_jemalloc() -> bool:
    """Make jemalloc the pool of this process's Arrow buffers, and of the processes it
    starts from now on (decoder workers: through the environment), unless the user chose
    a pool (``ARROW_DEFAULT_MEMORY_POOL``) or this Arrow has no jemalloc. True if so."""
    if ARROW_POOL_VARIABLE in os.environ:
        return False
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # built without it (macOS wheels)
        return False
    pa.set_memory_pool(pool)
    os.environ[ARROW_POOL_VARIABLE] = "jemalloc"
    return True


def arrow_from_jemalloc_at_start() -> bool:
    """Before pyarrow is imported: make jemalloc Arrow's default pool for its C++ code too,
    unless the user chose a pool. :func:`arrow_from_jemalloc` changes only pyarrow's default;
    Arrow's C++ chose its own at import (mimalloc), and its readers allocate from that —
    ``pyarrow.dataset``, which pyiceberg's scans use: a follower's marts updates and
    compactions. mimalloc kept what they freed, past ``release_memory`` (which purges the
    pool pyarrow names): 195 MiB resident of a follower's 618 after 10 minutes of ``up`` at
    2,000 events/s. Linux only (Arrow's wheels elsewhere may lack jemalloc). True if set."""
    if not sys.platform.startswith("linux") or "pyarrow" in sys.modules:
        return False
    if ARROW_POOL_VARIABLE in os.environ:
        return False
    os.environ[ARROW_POOL_VARIABLE] = "jemalloc"
    return True


# Polars' own jemalloc (tikv-jemallocator) reads _RJEM_MALLOC_CONF; polars, when imported, sets
# it to its defaults followed by what was there, so a process that imported polars hands those
# defaults to the processes it starts. jemalloc takes the last value given for an option.
POLARS_ALLOCATOR_VARIABLE = "_RJEM_MALLOC_CONF"
POLARS_RETURNS_MEMORY = "dirty_decay_ms:0,muzzy_decay_ms:0"
_POLARS_OWN_OPTIONS = frozenset(
    {"dirty_decay_ms:500", "muzzy_decay_ms:1000", "thp:always", "metadata_thp:always"}
)


def polars_returning_memory(inherited: str | None) -> str | None:
    """The ``_RJEM_MALLOC_CONF`` for a process whose polars gives freed pages back at once:
    ``inherited`` with :data:`POLARS_RETURNS_MEMORY` last, unless it holds a setting of the
    user's (anything but polars' own defaults): then None, and it is kept as it is.

    >>> polars_returning_memory(None)
    'dirty_decay_ms:0,muzzy_decay_ms:0'
    >>> polars_returning_memory("dirty_decay_ms:500,muzzy_decay_ms:1000")
    'dirty_decay_ms:500,muzzy_decay_ms:1000,dirty_decay_ms:0,muzzy_decay_ms:0'
    >>> polars_returning_memory("dirty_decay_ms:500,muzzy_decay_ms:1000,narenas:1") is None
    True
    """
    options = [o for o in (inherited or "").split(",") if o]
    if any(o not in _POLARS_OWN_OPTIONS for o in options):
        return None
    return ",".join([*options, POLARS_RETURNS_MEMORY])
