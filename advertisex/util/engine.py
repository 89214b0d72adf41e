"""DuckDB as an in-process vectorized engine over Arrow: tables in, a table out.

Kernels (and the JSON decoders in ``formats``) express their column work as SQL run
here. No files, no catalogs: the connection is in-memory and only sees the Arrow
tables passed in, so a kernel stays a pure function and runs the same inside a Spark
executor.

Opening an in-memory DuckDB database costs about 20 ms of CPU — more than a kernel's
query over a micro-batch — so :func:`run` borrows one from a pool that outlives the
threads: a runner's worker threads come and go with each batch, their connections stay.

DuckDB 2's package is two layers: the compiled engine (``_duckdb``: connections, ``execute``,
``fetchall``, the parser, the errors) and a relational API written in Python over it
(``con.sql``, relations, expressions), attached to every connection when ``duckdb`` is
imported. Importing that layer costs ≈ 340 M instructions (≈ 0.1 s of CPU), more than the
rest of ``advertisex query "select 1"`` together; a caller that only executes statements and
fetches their rows asks for :func:`engine_module` or ``connection(relational=False)`` and
never loads it. A connection made without it is the same class: importing ``duckdb`` later
gives it ``con.sql`` too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from advertisex.util.timeutil import HOUR_US

if TYPE_CHECKING:  # callers hand Arrow in; a report's rows for the CLI need none
    from pathlib import Path

    import pyarrow as pa

_local = threading.local()
# Pooled connections no thread is using now, each with the thread count last set on it
# (None: DuckDB's default, one per core).
_idle: list[tuple[Any, int | None]] = []
_pool_lock = threading.Lock()
_POOL_MAX = 8  # idle connections kept (about the threads that run kernels at once)


def engine_module() -> Any:
    """DuckDB's compiled engine module without the relational API written over it: its
    ``connect``, ``tokenize``, ``token_type`` and errors are those ``duckdb`` re-exports (the
    same objects). A DuckDB without that split (1.x) gives its ``duckdb`` module.

    >>> con = engine_module().connect(":memory:")
    >>> con.execute("select 41 + 1 as answer").fetchall(), con.description[0][0]
    ([(42,)], 'answer')
    """
    try:
        import _duckdb
    except ImportError:  # pragma: no cover - DuckDB before the split
        import duckdb

        return duckdb
    return _duckdb


# Where the kernels' statements spill what outgrows memory (spill_to); None: DuckDB's
# default, ``.tmp`` in the working directory.
_spill: str | None = None


def spill_to(folder: Path | None) -> None:
    """Kernel statements of this process spill under ``folder`` from now on (a runner's
    ``<data_dir>/spill``): DuckDB's default, ``.tmp`` in whatever folder the command was
    run from, wrote outside the data directory, up to 90 % of that disk. The connections
    pooled already are moved too."""
    global _spill
    wanted = str(folder.absolute()) if folder is not None else None
    if wanted == _spill:
        return  # every batch of a runner names the same folder
    _spill = wanted
    with _pool_lock:
        for con, _ in _idle:
            _spill_on(con)


def _spill_on(con: Any) -> None:
    if _spill is not None:
        con.execute(f"SET temp_directory = '{_spill.replace(chr(39), chr(39) * 2)}'")


def _connect() -> Any:
    con = engine_module().connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB draws a progress bar on standard output for a statement that runs past 2 s
    # (a kernel over a big batch on a busy machine): that broke `--format json` answers.
    con.execute("SET enable_progress_bar = false")
    # DuckDB's allocator (its own jemalloc, for the whole process) purges the pages its
    # statements freed only when its threads allocate again: a follower's marts update left
    # them resident until the next one, whose peak stacked on top (an aggregate of 2 M rows:
    # ≈ 200 MiB). Its background threads purge them within a second of going idle.
    con.execute("SET allocator_background_threads = true")
    _spill_on(con)
    return con


def connection(relational: bool = True) -> Any:
    """A per-thread in-memory DuckDB connection with UTC as its time zone, for callers
    that keep state on it (a report's views). ``relational=False``: a caller that uses only
    ``execute``, ``description`` and ``fetchall`` on it, which so does not load DuckDB's
    Python relational API (``con.sql`` …) for it."""
    if relational:
        import duckdb  # noqa: F401  # gives every connection con.sql and relations
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = _connect()
    return con


def share_cores(threads: int | None) -> None:
    """The calling thread's statements (:func:`run`) use at most ``threads`` of DuckDB's
    threads from now on (None: one per core, DuckDB's default).

    A runner that runs kernels on several threads at once gives each its share of the
    cores: every statement of two piece workers on two cores using both cores made four
    threads fight for two (a 2 M-event ``process`` took 7.2-7.3 s; one each, 6.9 s, with
    less time in the kernel switching between them)."""
    _local.threads = threads


@contextmanager
def borrowed() -> Iterator[Any]:
    """An in-memory DuckDB connection (UTC) that only this caller uses until it is handed
    back; hand it back as it was (tables registered on it unregistered). It runs with the
    calling thread's share of the cores (:func:`share_cores`)."""
    import duckdb  # noqa: F401  # borrowers use con.sql

    wanted = getattr(_local, "threads", None)
    with _pool_lock:
        con, threads = _idle.pop() if _idle else (None, None)
    if con is None:
        con = _connect()
    if threads != wanted:
        con.execute("RESET threads" if wanted is None else f"SET threads = {int(wanted)}")
    try:
        yield con
    finally:
        with _pool_lock:
            kept = len(_idle) < _POOL_MAX
            if kept:
                _idle.append((con, wanted))
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
            if _submits_directly(con):
                return con._submit(query, params, "arrow", _BATCH_ROWS).arrow_table()
            return con.sql(query, params=params).to_arrow_table()
        finally:
            for name in names:
                con.unregister(name)


def utc_hour(column: str) -> str:
    """SQL for the UTC hour the instant ``column`` (a TIMESTAMPTZ) falls in: what
    ``date_trunc('hour', column)`` gives, by integer arithmetic on its microseconds.
    The engine truncates a TIMESTAMPTZ through its calendar library, ≈ 70 ms a million
    rows (a third of counting the 2 M set's impressions for the hourly rollup); this,
    ≈ 3 ms. Floored, not truncated toward zero (``%`` keeps the dividend's sign), so a
    time before 1970 lands in its own hour as with ``date_trunc``.

    >>> import pyarrow as pa
    >>> from datetime import datetime, UTC
    >>> t = pa.table({"t": pa.array([datetime(2026, 12, 7, 1, 59, 59, 999999, UTC),
    ...     datetime(1969, 12, 31, 23, 30, tzinfo=UTC), datetime(1, 1, 1, 0, 30, tzinfo=UTC)])})
    >>> hours = run(f"SELECT {utc_hour('t')} AS h FROM t", t=t).column("h").to_pylist()
    >>> [str(h) for h in hours]
    ['2026-12-07 01:00:00+00:00', '1969-12-31 23:00:00+00:00', '0001-01-01 00:00:00+00:00']
    """
    us = f"epoch_us({column})"
    return f"make_timestamptz({us} - (({us} % {HOUR_US}) + {HOUR_US}) % {HOUR_US})"


# Rows per Arrow batch of a result (DuckDB's own default).
_BATCH_ROWS = 131072


_direct: list[bool] = []  # whether _submits_directly, once asked (a property of the DuckDB)


def _submits_directly(con: Any) -> bool:
    """Whether statements run through the compiled call under DuckDB 2's relational API.

    ``con.sql(q).to_arrow_table()`` binds the statement in Python's relational layer (for
    the relation's columns), then runs it, which binds it again: ≈ 1.5 ms of a kernel's
    4.6 ms query over a few records, 0.2 ms of the least query, most of it holding the GIL.
    The call it ends in (``_submit``) is not public: it is used only where it gives the
    rows that path gives on a first statement, else (DuckDB 1, or a later 2 that changed
    it) every statement takes the public path."""
    if not _direct:
        _direct[:] = [_probe(con)]  # threads asking at once all find the same answer
    return _direct[0]


def _probe(con: Any) -> bool:
    submit = getattr(con, "_submit", None)
    if submit is None:
        return False
    probe = "SELECT 41 + $one AS answer, [$one] AS list"
    try:
        direct = submit(probe, {"one": 1}, "arrow", _BATCH_ROWS).arrow_table()
        return bool(direct.equals(con.sql(probe, params={"one": 1}).to_arrow_table()))
    except Exception:  # a different signature: the public path
        return False
