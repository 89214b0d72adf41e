"""SQL from the console and the API: the CLI's read-only query engine, plus a row cap and
a time limit.

The statement goes through :class:`advertisex.lake.query.QueryEngine` exactly as
``advertisex query`` sends it — the same parser-based refusal of anything but reads, the
same confinement to the lake's files. On top: at most ``max_rows`` rows are fetched (the
rest is never read into memory), and a timer interrupts the statement after
``timeout`` seconds.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from advertisex.errors import QueryTimeoutError, UserInputError
from advertisex.util import jsonutil

if TYPE_CHECKING:
    from advertisex.lake.tables import Lake

MAX_SQL_BYTES = 100_000


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    truncated: bool  # more rows existed than the caps (rows, bytes) allowed
    seconds: float

    @property
    def columns(self) -> list[str]:
        return self.table.column_names

    def rows(self) -> list[dict[str, Any]]:
        return self.table.to_pylist(maps_as_pydicts="lossy")

    def csv(self) -> str:
        """The rows as CSV with a header; nested values as JSON, and text that a
        spreadsheet would run as a formula (``=…``, ``+…``, ``-…``, ``@…``) quoted, in the
        header too (a column is named by the query: ``select 1 as "=HYPERLINK(…)"``)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([_csv_cell(c) for c in self.columns])
        for row in self.rows():
            writer.writerow([_csv_cell(row[c]) for c in self.columns])
        return buffer.getvalue()


def run_query(
    lake: Lake,
    sql: str,
    *,
    max_rows: int,
    timeout: float,
    memory_bytes: int | None = None,
    max_bytes: int | None = None,
) -> QueryResult:
    """Run read-only ``sql``; at most ``max_rows`` rows and ``max_bytes`` of them, at most
    ``timeout`` seconds, and ``memory_bytes`` of memory (and as much spilled to disk)."""
    from advertisex.lake.query import QueryEngine

    if len(sql.encode()) > MAX_SQL_BYTES:
        raise UserInputError(
            f"the SQL text is longer than {MAX_SQL_BYTES:,} bytes", hint="shorten the query"
        )
    started = time.perf_counter()
    engine = QueryEngine(lake, memory_bytes=memory_bytes)
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        engine.interrupt()

    timer = threading.Timer(max(timeout - (time.perf_counter() - started), 0.001), stop)
    timer.daemon = True
    timer.start()
    try:
        table = engine.query(sql, limit=max_rows + 1, max_bytes=max_bytes)
    except UserInputError as error:
        if expired.is_set():
            raise QueryTimeoutError(
                f"the query ran longer than {timeout:g} s and was stopped",
                hint="narrow it (a WHERE on event_time, a LIMIT, a mart instead of a curated "
                "table) or raise console.query_timeout_seconds",
            ) from error
        raise
    finally:
        timer.cancel()
    truncated = table.num_rows > max_rows or engine.cut_at_bytes
    return QueryResult(table.slice(0, max_rows), truncated, time.perf_counter() - started)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return jsonutil.dumps_str(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
