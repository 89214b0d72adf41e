"""Imported first by the decoder workers' forkserver, before pyarrow and polars start their
allocators: the workers give back what a decode freed.

A decoder worker lives for a batch and decodes segment after segment. Polars' own jemalloc
(polars-avro's bids) kept what each decode freed: a worker held ≈ 150 MiB more after its
first bid segment of a 10 M backlog, and the two workers' share of the processor's tree
at its peak was 320-470 MiB. With freed pages returned at once the 10 M backlog's tree
peaked at 1,130-1,197 MiB instead of 1,376-1,411, at the same speed (docs/benchmarks.md).
Arrow's buffers come from jemalloc here as in the processor (``util.allocator``): the
processor sets that for the processes it starts, but ``advertisex process`` starts the
forkserver before its batch does. A setting the user made is kept (polars' own defaults,
which a processor that imported polars first hands down, are not one). Only the forkserver
and its workers import this module; the processor's allocators are ``util.allocator``'s.
"""

from __future__ import annotations

import os

from advertisex.util.allocator import (
    ARROW_POOL_VARIABLE,
    POLARS_ALLOCATOR_VARIABLE,
    polars_returning_memory,
)

# polars' defaults, inherited from a processor that imported polars before it started the
# forkserver, are not a user's setting: freed memory goes back at once after them.
if (setting := polars_returning_memory(os.environ.get(POLARS_ALLOCATOR_VARIABLE))) is not None:
    os.environ[POLARS_ALLOCATOR_VARIABLE] = setting
os.environ.setdefault(ARROW_POOL_VARIABLE, "jemalloc")
