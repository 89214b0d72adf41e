"""SQL from the console and the API: the CLI's read-only query engine, plus a row cap and
a time limit, in a worker process under a memory budget.

The statement goes through :class:`advertisex.lake.query.QueryEngine` exactly as
``advertisex query`` sends it — the same parser-based refusal of anything but reads, the
same confinement to the lake's files. On top: at most ``max_rows`` rows are fetched (the
rest is never read into memory), and a timer interrupts the statement after
``timeout`` seconds.

:func:`run_isolated` runs it in a worker process (``util.isolate``), killed when its
resident memory passes the query's budget: DuckDB makes a statement's values outside its
own ``memory_limit`` — ``select repeat('x', 1000000000)`` took the server to 4 GB for
seconds before its answer was refused — and nothing in the process running DuckDB can stop
that. The server keeps its own memory; the worker's is bounded, and replaced when killed.
Each query slot (:mod:`advertisex.console.slots`) has its own worker, which lives only while
its process holds the slot: an idle worker counts in the budget as a running query does.
"""

from __future__ import annotations

import csv
import io
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from advertisex.config import QUERY_ENGINE_MIN_BYTES, QUERY_WORKER_OVERHEAD_BYTES
from advertisex.errors import (
    AdvertiseXError,
    QueryFailedError,
    QueryTimeoutError,
    QueryTooLargeError,
    QueryWorkerFailedError,
    UserInputError,
)
from advertisex.util import jsonutil

if TYPE_CHECKING:
    from advertisex.config import Settings
    from advertisex.lake.tables import Lake
    from advertisex.util.isolate import WorkerPool

log = logging.getLogger("advertisex.console")
MAX_SQL_BYTES = 100_000
# How long past its time limit a worker may take to stop its statement (DuckDB looks at an
# interrupt between chunks, not inside a function making one huge value) before it is killed.
STOP_GRACE_SECONDS = 5.0
# What a query imports, imported once in the forkserver (a worker is forked with them). A new
# worker imported the rest on its first query: the settings' pydantic models with the query's
# own module (≈ 70-80 ms of CPU), the schemas of the lake's errors and fastavro for the
# tables' manifests; that query cost 110-130 ms of its worker's CPU against 20 for the next.
_PRELOAD = (
    "duckdb",
    "pyarrow",
    "fastavro",
    "advertisex.lake.query",
    "advertisex.lake.tables",
    "advertisex.lake.damage",
    "advertisex.util.mapped",  # the worker's reading of its job's arguments
    __name__,
)
# An idle query worker (120-250 MiB, holding its slot) is stopped this long after its last
# query, or as soon as a query of another process needs its slot: the next query then forks
# one again from the forkserver, which has imported what a query does (_PRELOAD): 30-40 ms
# of the new worker's CPU for that query, 20-30 for a kept worker's (docs/benchmarks.md).
IDLE_WORKER_SECONDS = 60.0


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    truncated: bool  # more rows existed than the caps (rows, bytes) allowed
    seconds: float
    # The rows as the API's JSON array, when the byte cap measured them so (in the worker):
    # encoded once there, not again by the server (twice cost the server ~40-50 ms of CPU
    # for an answer of 5,000 rows or 32 MiB).
    rows_json: bytes | None = None

    @property
    def columns(self) -> list[str]:
        return self.table.column_names

    def rows(self) -> list[dict[str, Any]]:
        return self.table.to_pylist(maps_as_pydicts="lossy")

    def rows_as_json(self) -> bytes:
        """The rows as a JSON array, as ``jsonutil.dumps(self.rows())`` writes it."""
        return self.rows_json if self.rows_json is not None else jsonutil.dumps(self.rows())

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
        # Waited for, so that the timer's thread never drops the last reference to the
        # engine: a DuckDB connection closed on another thread while the interpreter exits
        # aborts the process ("terminate called … FATAL: exception not rethrown", 134).
        timer.cancel()
        timer.join()
    truncated = table.num_rows > max_rows or engine.cut_at_bytes
    table = table.slice(0, max_rows)
    rows_json = None
    if max_bytes is not None:
        fit, rows_json = _rows_within_as_json(table, max_bytes)
        truncated = truncated or fit < table.num_rows
        table = table.slice(0, fit)
    return QueryResult(table, truncated, time.perf_counter() - started, rows_json)


def _rows_within_as_json(table: pa.Table, max_bytes: int) -> tuple[int, bytes]:
    """How many of ``table``'s first rows fit in ``max_bytes`` as the API's JSON, and those
    rows as its JSON array (each row plus one byte, a comma or a bracket, counts); refused
    when not even one does. The engine counts Arrow's bytes, and a value can take six
    times as many in JSON (a control character is ``\\u0001``): a 32 MiB answer went out as
    180 MB of JSON."""
    # One buffer grown in place: a list of each row's bytes, joined, took three times the CPU
    # (each row's allocation faulted in fresh pages).
    array, fit = bytearray(b"["), 0
    for row in table.to_pylist(maps_as_pydicts="lossy"):
        line = jsonutil.dumps(row)
        if len(array) + len(line) > max_bytes:  # its "," or the "]" counts as the "[" does
            if fit == 0:
                raise QueryTooLargeError(
                    f"the answer's first row alone holds more than {max_bytes:,} bytes as JSON",
                    hint="select less of it (left(text, 1000), fewer columns) or raise "
                    "console.query_max_bytes",
                )
            break
        array += line
        array += b","
        fit += 1
    if fit:
        del array[-1]
    array += b"]"
    return fit, bytes(array)


def run_isolated(
    settings: Settings,
    sql: str,
    *,
    max_rows: int,
    timeout: float,
    memory_bytes: int,
    max_bytes: int,
    pool: WorkerPool,
) -> QueryResult:
    """:func:`run_query` over the lake of ``settings`` in ``pool``'s worker process (its
    slot's: :class:`QueryWorkers`), killed once its resident memory passes ``memory_bytes``
    (its share of ``console.query_memory_bytes``: DuckDB gets what is left of it after
    ``max_bytes`` and :data:`~advertisex.config.QUERY_WORKER_OVERHEAD_BYTES`;
    ``query_too_large``) or its statement outlives ``timeout`` by :data:`STOP_GRACE_SECONDS`
    (``query_timeout``); a worker that dies otherwise is ``query_worker_failed``."""
    from advertisex.util.isolate import Budget, BudgetExceeded

    budget = Budget(seconds=timeout + STOP_GRACE_SECONDS, memory_bytes=memory_bytes)
    engine_bytes = max(
        memory_bytes - max_bytes - QUERY_WORKER_OVERHEAD_BYTES, QUERY_ENGINE_MIN_BYTES
    )
    oom_kills = _oom_kills()
    try:
        return pool.run(
            budget, _query_in_worker, settings, sql, max_rows, timeout, engine_bytes, max_bytes
        )
    except AdvertiseXError:
        raise
    except BudgetExceeded as breach:
        if breach.kind == "time":
            raise QueryTimeoutError(
                f"the query ran longer than {timeout:g} s and was stopped",
                hint="narrow it (a WHERE on event_time, a LIMIT, a mart instead of a curated "
                "table) or raise console.query_timeout_seconds",
            ) from None
        if breach.kind == "memory":
            config = settings.console
            raise QueryTooLargeError(
                f"the query needed more memory than its share of console.query_memory_bytes: "
                f"{memory_bytes >> 20} MiB of {config.query_memory_bytes >> 20} MiB, shared by "
                f"console.query_concurrency ({config.query_concurrency}) queries at once "
                f"({breach.message})",
                hint="select less (left(text, 1000), fewer columns or rows, a WHERE on "
                "event_time), or raise console.query_memory_bytes (or lower "
                "console.query_concurrency: fewer queries at once, a larger share each)",
            ) from None
        # A SIGKILL while the kernel's out-of-memory killer (or a container's memory limit's)
        # stopped a process: for memory too, though not over the share.
        killed = breach.exitcode == -signal.SIGKILL and oom_kills is not None
        if killed and (_oom_kills() or 0) > (oom_kills or 0):
            config = settings.console
            raise QueryTooLargeError(
                "the system ran out of memory, and its out-of-memory killer stopped the query's "
                f"worker ({breach.message}) before it reached its share of "
                f"console.query_memory_bytes ({memory_bytes >> 20} MiB of "
                f"{config.query_memory_bytes >> 20} MiB): the machine has less memory for the "
                "console's queries than that",
                hint="lower console.query_memory_bytes to what this machine (or its container's "
                "memory limit) can give the console's queries, or select less",
            ) from None
        # It died of something else (a signal, an exit): nothing says the query was too
        # large, and the same query may well be answered by the next worker.
        log.error(
            "a console query's worker process failed (%s); the statement: %r",
            breach.message,
            sql[:1000],
        )
        raise QueryWorkerFailedError(
            f"the query's worker process failed before it answered ({breach.message}); the "
            "query may be fine: it was not stopped for its memory or its time",
            hint="run it again (a new worker process takes it); if it fails again, the "
            "server's log has the statement and how its worker ended",
        ) from None
    except Exception as error:
        raise _told(error) from None


def _oom_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer has stopped since boot, a
    container's memory limit's included (Linux's ``/proc/vmstat``; None where unknown)."""
    try:
        with open("/proc/vmstat", "rb") as handle:
            for line in handle:
                if line.startswith(b"oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _told(error: Exception) -> AdvertiseXError:
    """What a query's worker raised, as an error of the family: one that did not cross the
    pipe as itself (``WorkerError``) keeps its ``code``, status and hint when it had them;
    anything else is a ``query_failed``, its traceback logged. Raised as it was, it was the
    API's anonymous 500 ``internal``, and an unhandled error on the SQL page."""
    from advertisex.util.isolate import WorkerError

    worker = error if isinstance(error, WorkerError) else WorkerError.of(error)
    kept = worker.attributes
    if isinstance(kept.get("code"), str) and isinstance(kept.get("http_status"), int):
        told = QueryFailedError(worker.message, hint=kept.get("hint") or None)
        told.code, told.http_status = kept["code"], kept["http_status"]
        told.retryable = bool(kept.get("retryable", False))
        return told
    log.error("a console query failed in its worker process:\n%s", worker.trace.rstrip())
    return QueryFailedError(
        f"the query failed: {worker}"[:1000],
        hint="this is a fault of AdvertiseX, not of the query; the server's log has its traceback",
    )


def start_query_forkserver() -> bool:
    """Start this process's forkserver now, with what a query imports: the query workers
    are forked from it (``isolate.start_forkserver``; False where workers are spawned)."""
    from advertisex.util.isolate import start_forkserver

    return start_forkserver(_PRELOAD)


class QueryWorkers:
    """One worker process per query slot of this process's, started by its slot's first
    query and kept for the next: :meth:`stop` is the slots' ``on_release`` (a worker lives
    only while its slot is held, so ``console.query_memory_bytes`` bounds it idle too)."""

    def __init__(self) -> None:
        from advertisex.util.isolate import preload_too

        self._pools: dict[int, WorkerPool] = {}
        self._lock = threading.Lock()
        # Beside the collector (serve, up), its decoder pool starts the process's forkserver.
        preload_too(_PRELOAD)

    def pool(self, slot: int) -> WorkerPool:
        """``slot``'s pool of one worker."""
        import atexit

        from advertisex.util.isolate import WorkerPool

        with self._lock:
            pool = self._pools.get(slot)
            if pool is None:
                pool = self._pools[slot] = WorkerPool(1, _PRELOAD)
                atexit.register(pool.close)
            return pool

    def stop(self, slot: int) -> None:
        """Stop ``slot``'s idle worker (its slot is being given up)."""
        with self._lock:
            pool = self._pools.get(slot)
        if pool is not None:
            pool.shed()

    def alive(self) -> int:
        """How many of these workers are running or idle now."""
        with self._lock:
            pools = list(self._pools.values())
        return sum(pool.alive() for pool in pools)


def _query_in_worker(
    settings: Settings, sql: str, max_rows: int, timeout: float, memory_bytes: int, max_bytes: int
) -> QueryResult:
    """In a query worker: the lake opened afresh (other processes commit all the time), a
    read failure told as the lost or damaged files behind it (``lake.damage``: its cause
    does not cross the pipe). Pending Avro behind ``raw.*`` is decoded here, not in a
    decoder worker of its own (a worker has none): this worker's budget bounds it."""
    from advertisex.lake.damage import explained
    from advertisex.lake.tables import Lake
    from advertisex.util.isolate import WorkerError

    processor = settings.processor.model_copy(update={"decode_isolated": False})
    lake = Lake(settings.model_copy(update={"processor": processor}))
    try:
        return run_query(
            lake,
            sql,
            max_rows=max_rows,
            timeout=timeout,
            memory_bytes=memory_bytes,
            max_bytes=max_bytes,
        )
    except Exception as error:
        told = explained(lake, error)
        if told is not None:
            raise told from None
        if isinstance(error, AdvertiseXError):
            raise
        raise WorkerError.of(error) from None  # its traceback from here, for the server's log


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return jsonutil.dumps_str(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
