"""The kernels' DuckDB connections outlive the threads that borrow them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pytest

from advertisex.util import engine


def test_worker_threads_of_successive_batches_reuse_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A runner's worker threads come and go with each batch; opening a DuckDB database
    (about 20 ms of CPU) once per thread per batch was a good part of a small batch."""
    opened: list[Any] = []
    connect = engine._connect

    def counted() -> Any:
        opened.append(connect())
        return opened[-1]

    monkeypatch.setattr(engine, "_connect", counted)
    monkeypatch.setattr(engine, "_idle", [])
    both_in = threading.Barrier(2)

    def kernel(x: int) -> int:
        with engine.borrowed() as con:
            both_in.wait(timeout=10)  # two at once never share a connection
            rows = con.sql("select $x + 1 as y", params={"x": x}).fetchall()
        return int(rows[0][0]) + int(engine.run("select max(v) as m from t", t=_t(x))[0][0].as_py())

    for batch in range(3):
        with ThreadPoolExecutor(max_workers=2) as pool:  # new threads each batch
            assert list(pool.map(kernel, [batch, batch + 10])) == [2 * batch + 1, 2 * batch + 21]
    assert len(opened) == 2
    assert len({id(c) for c in opened}) == 2


def _t(x: int) -> pa.Table:
    return pa.table({"v": [x, x - 1]})


def test_no_progress_bar_on_standard_output() -> None:
    """A statement past DuckDB's 2 s drew its progress bar on stdout, inside the JSON an
    ``advertisex demo --format json`` (or ``process``) prints."""
    for con in (engine.connection(relational=False), engine.connection()):
        setting = con.execute("select current_setting('enable_progress_bar')").fetchall()
        assert setting == [(False,)]
    shown = engine.run("select current_setting('enable_progress_bar') as on")
    assert shown.column("on").to_pylist() == [False]


def test_duckdb_gives_back_what_its_statements_freed_while_the_process_is_idle() -> None:
    """DuckDB's jemalloc purged the pages a statement freed only when its threads allocated
    again: after a marts update a follower kept ≈ 200 MiB of them until the next one. Its
    background threads purge them (``allocator_background_threads``)."""
    shown = engine.run("select current_setting('allocator_background_threads') as on")
    assert shown.column("on").to_pylist() == [True]


def _threads() -> int:
    return int(engine.run("select current_setting('threads') as n").column("n")[0].as_py())


def test_a_thread_runs_its_statements_on_its_share_of_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kernels of two workers at once each on every core made twice as many threads as
    cores; a thread's share holds for its statements only, on whichever pooled
    connection they get, and a connection handed back goes on with the next borrower's."""
    monkeypatch.setattr(engine, "_idle", [])
    default = _threads()
    seen: list[int] = []

    def shared() -> None:
        engine.share_cores(1)
        seen.append(_threads())

    worker = threading.Thread(target=shared)
    worker.start()
    worker.join()
    assert seen == [1]
    assert len(engine._idle) == 1  # the same connection, set to one thread, comes back here
    assert _threads() == default  # this thread never chose: DuckDB's default again
    engine.share_cores(1)
    try:
        assert _threads() == 1
    finally:
        engine.share_cores(None)
    assert _threads() == default


def _public(query: str, params: dict[str, object] | None = None, **tables: pa.Table) -> pa.Table:
    """``engine.run`` through DuckDB's public relational API only."""
    with engine.borrowed() as con:
        for name, table in tables.items():
            con.register(name, table)
        try:
            return con.sql(query, params=params).to_arrow_table()
        finally:
            for name in tables:
                con.unregister(name)


def test_statements_run_directly_give_the_public_apis_rows() -> None:
    """Where DuckDB offers it, ``run`` skips the relational layer's second bind; the rows,
    types and names are those the public ``con.sql(…).to_arrow_table()`` gives."""
    import duckdb

    rows = pa.table(
        {
            "t": pa.array([0, 1_700_000_000_000_000, None], pa.timestamp("us", "UTC")),
            "s": pa.array(["a", None, "é"]),
            "d": pa.array(["x", "y", "x"]).dictionary_encode(),
            "m": pa.array([[("k", "v")], None, []], pa.map_(pa.string(), pa.string())),
        }
    )
    query = """SELECT t, s, d, m, [s, $word] AS l, {'a': t, 'b': $n} AS st,
                 to_json(m) AS j, t + INTERVAL 1 HOUR AS later FROM rows WHERE $n > 0"""
    params = {"word": "w", "n": 2}
    ran = engine.run(query, params, rows=rows)
    assert ran.equals(_public(query, params, rows=rows))
    assert ran.num_rows == 3
    if duckdb.__version__.startswith("2."):
        assert engine._direct[0] is True  # the path this test is about was taken


def test_without_the_direct_call_statements_take_the_public_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Changed:
        """A connection whose ``_submit`` has another signature (a later DuckDB)."""

        def __init__(self, con: object) -> None:
            self._con = con

        def _submit(self, query: str) -> None:
            raise AssertionError("not to be called with the engine's arguments")

        def sql(self, query: str, params: object = None) -> object:
            return self._con.sql(query, params=params)  # type: ignore[attr-defined]

    with engine.borrowed() as con:
        monkeypatch.setattr(engine, "_direct", [])
        assert engine._submits_directly(Changed(con)) is False
        monkeypatch.setattr(engine, "_direct", [])
        assert engine._submits_directly(object()) is False  # no _submit at all (DuckDB 1)
    monkeypatch.setattr(engine, "_direct", [False])
    assert engine.run("SELECT 1 AS one").to_pylist() == [{"one": 1}]


def test_kernel_statements_spill_into_the_folder_the_runner_names(tmp_path) -> None:
    """DuckDB spilled into ``.tmp`` of whatever folder the command ran in (outside the data
    directory); after spill_to, pooled and new connections spill into the given folder."""
    from advertisex.util import engine

    with engine.borrowed():
        pass  # one pooled before
    try:
        engine.spill_to(tmp_path / "spill")
        with engine.borrowed() as con:
            ((where,),) = con.execute("select current_setting('temp_directory')").fetchall()
        assert where == str(tmp_path / "spill")
        assert engine.run("select current_setting('temp_directory') t").column("t")[0].as_py() == (
            str(tmp_path / "spill")
        )
    finally:
        engine.spill_to(None)
