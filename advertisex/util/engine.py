"""DuckDB as an in-process vectorized engine over Arrow: tables in, a table out.

Kernels (and the JSON decoders in ``formats``) express their column work as SQL run
here. No files, no catalogs: the connection is in-memory and only sees the Arrow
tables passed in, so a kernel stays a pure function and runs the same inside a Spark
executor.

Opening an in-memory DuckDB database costs about 20 ms of CPU — more than a kernel's
query over a micro-batch — so :func:`run` borrows one from a pool that outlives the
threads: a runner's worker threads come and go with each batch, their connections stay.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # callers hand Arrow in; a report's rows for the CLI need none
    import pyarrow as pa

_local = threading.local()
_idle: list[Any] = []  # pooled connections no thread is using now
_pool_lock = threading.Lock()
_POOL_MAX = 8  # idle connections kept (about the threads that run kernels at once)


def _connect() -> Any:
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


def connection() -> Any:
    """A per-thread in-memory DuckDB connection with UTC as its time zone, for callers
    that keep state on it (a report's views)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = _connect()
    return con


@contextmanager
def borrowed() -> Iterator[Any]:
    """An in-memory DuckDB connection (UTC) that only this caller uses until it is handed
    back; hand it back as it was (tables registered on it unregistered)."""
    with _pool_lock:
        con = _idle.pop() if _idle else None
    if con is None:
        con = _connect()
    try:
        yield con
    finally:
        with _pool_lock:
            kept = len(_idle) < _POOL_MAX
            if kept:
                _idle.append(con)
        if not kept:
            con.close()


def run(query: str, params: dict[str, Any] | None = None, **tables: pa.Table) -> pa.Table:
    """Run ``query`` with each keyword table visible under its name; return Arrow.

    >>> import pyarrow as pa
    >>> run("select max(x) as s from t", t=pa.table({"x": [1, 2]})).to_pylist()
    [{'s': 2}]
    """
    with borrowed() as con:
        names = []
        try:
            for name, table in tables.items():
                con.register(name, table)
                names.append(name)
            return con.sql(query, params=params).to_arrow_table()
        finally:
            for name in names:
                con.unregister(name)


def quote_list(values: tuple[str, ...] | list[str]) -> str:
    """A SQL list literal of strings, for the fixed field names kernels use."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"
