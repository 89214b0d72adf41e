"""What the decoder workers import once, in their forkserver, and a way to start that
forkserver first thing: this module loads the standard library only, so a command that
decodes can start it before its own imports (``advertisex.cli.app``).

The workers import these so that each job starts warm and its budget pays for decoding
only (fastavro takes a few hundred ms to import, more than the fast path's share of a
small budget on a loaded machine). polars-avro is not among them: the compiled Avro
reader (``native/avro.c``) reads the bids' schemas, and polars-avro (0.5 s to import,
polars with it) loads in a worker only for a file of another schema — the forkserver was
busy with it for half a second of every command's start, beside the command's own
imports. DuckDB (the JSON framer's validity check) would load on a worker's first job
otherwise: 0.3-0.9 s of each worker's first JSON segment, on the batch's critical path. It starts no thread on import (forking a process
with a running DuckDB would not be safe). pandas, which Arrow would import on its first
conversion of a Python list, is refused first (``without_pandas``).
"""

from __future__ import annotations

from advertisex.util.isolate import start_forkserver

DECODER_PRELOAD = (
    "advertisex.formats.worker_memory",  # before pyarrow and polars: their allocators
    "advertisex.formats.without_pandas",
    "pyarrow",
    "fastavro",
    "isal.isal_zlib",  # inflates the Avro blocks for the compiled reader
    "duckdb",
    "advertisex.formats.avrofmt",
    "advertisex.formats.csvfmt",
    "advertisex.formats.jsonfmt",
    "advertisex.formats.jsonrecords",
)


def start_decoder_forkserver() -> bool:
    """Start the decoder workers' forkserver now (:func:`~advertisex.util.isolate.start_forkserver`);
    the decoder pool (:func:`advertisex.formats.bounded.decode_pool`) forks its workers from it."""
    return start_forkserver(DECODER_PRELOAD)
