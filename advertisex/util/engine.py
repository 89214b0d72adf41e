"""DuckDB as an in-process vectorized engine over Arrow: tables in, a table out.

Kernels (and the JSON decoders in ``formats``) express their column work as SQL run
here. No files, no catalogs: the connection is in-memory and only sees the Arrow
tables passed in, so a kernel stays a pure function and runs the same inside a Spark
executor.
"""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa

_local = threading.local()


def connection() -> Any:
    """A per-thread in-memory DuckDB connection with UTC as its time zone."""
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        _local.con = con
    return con


def run(query: str, params: dict[str, Any] | None = None, **tables: pa.Table) -> pa.Table:
    """Run ``query`` with each keyword table visible under its name; return Arrow.

    >>> run("select max(x) as s from t", t=pa.table({"x": [1, 2]})).to_pylist()
    [{'s': 2}]
    """
    con = connection()
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
