"""Imported first by the decoder workers' forkserver, before pyarrow and polars start their
allocators: the workers give back what a decode freed.

A decoder worker lives for a batch and decodes segment after segment. Polars' own jemalloc
(polars-avro's bids) kept what each decode freed: a worker held ≈ 150 MiB more after its
first bid segment of a 10 M backlog, and the two workers' share of the processor's tree
at its peak was 320-470 MiB. With freed pages returned at once the 10 M backlog's tree
peaked at 1,130-1,197 MiB instead of 1,376-1,411, at the same speed (docs/benchmarks.md).
Arrow's buffers come from jemalloc here as in the processor (``util.allocator``): the
processor sets that for the processes it starts, but ``advertisex process`` starts the
forkserver before its batch does. A setting the user made is kept. Only the forkserver
and its workers import this module; the processor's allocators are ``util.allocator``'s.
"""

from __future__ import annotations

import os

from advertisex.util.allocator import ARROW_POOL_VARIABLE

# jemalloc's decay times for polars' allocator (tikv-jemallocator reads _RJEM_MALLOC_CONF;
# polars puts its own defaults, 500 and 1,000 ms, before what it finds there, and jemalloc
# takes the last value given).
POLARS_ALLOCATOR_VARIABLE = "_RJEM_MALLOC_CONF"
POLARS_ALLOCATOR_SETTING = "dirty_decay_ms:0,muzzy_decay_ms:0"

os.environ.setdefault(POLARS_ALLOCATOR_VARIABLE, POLARS_ALLOCATOR_SETTING)
os.environ.setdefault(ARROW_POOL_VARIABLE, "jemalloc")
