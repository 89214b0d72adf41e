"""The heap a process starts with, kept out of the cycle collector's passes.

A command loads ≈ 300-500 k objects of modules it keeps to its end. Every full pass of
Python's cycle collector walked all of them, holding the GIL: while the runner's modules
loaded, on the command's start where nothing else runs (0.55 s of CPU with the collector,
0.49 s without), and during a batch, where both piece workers need the GIL (≈ 1 % of a
2 M-event ``process``'s CPU; perf: ``gc_collect_main``, ``visit_decref``). Frozen once per
process and stage (the runner's modules; the tables' metadata, opened on a thread beside a
first batch's pieces): what is frozen is never collected, so a long-running processor's
later garbage must stay collectable.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_FROZEN: set[str] = set()
_FREEZING = threading.Lock()


def freeze_startup_heap(stage: str = "modules") -> None:
    """Leave what the process made until now out of the collector's passes; only the first
    call of each ``stage`` freezes."""
    with _FREEZING:
        if stage not in _FROZEN:
            _FROZEN.add(stage)
            gc.freeze()


@contextlib.contextmanager
def loading_modules() -> Iterator[None]:
    """The collector off while heavy modules load, and the startup heap frozen after
    (:func:`freeze_startup_heap`)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        freeze_startup_heap()
        if enabled:
            gc.enable()
