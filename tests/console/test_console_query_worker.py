"""A console or API query's answer, worker and budget: its rows encoded as JSON once, in the
worker that measured them against the byte cap; every error the worker raises answered with
a stable ``code`` and a readable message; and one memory budget for all queries at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from advertisex.util import jsonutil

# Each test starts, kills or waits out real query-worker processes (1–2 s apiece): the
# slow layer's, as a console or collector process is (docs/testing.md).
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_an_answers_rows_are_encoded_once_in_the_worker_the_cap_exact(
    lake_template: Path, make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker encoded every row as JSON to measure the answer against
    ``query_max_bytes``, threw that away, and the server encoded the rows again (~40-50 ms
    of the server's CPU for 5,000 rows or 32 MiB). The server now writes the worker's bytes."""
    from advertisex.console.query import QueryResult

    def encoded_again(self: QueryResult) -> list[dict[str, Any]]:
        raise AssertionError("the server made the rows again")

    monkeypatch.setattr(QueryResult, "rows", encoded_again)  # in this process, the server's
    client = make_client(lake_template, console={"query_max_bytes": 1 << 20})
    sql = "select range id, repeat(chr(1), 1000) || range txt, {'k': range} m from range(2000)"
    answer = client.post("/api/v1/query", json={"sql": sql})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert answer.content == jsonutil.dumps(body)  # the JSON the server wrote before, exactly
    rows = body["rows"]
    assert body["truncated"] is True and body["row_count"] == len(rows) > 100
    assert rows[7] == {"id": 7, "txt": "\x01" * 1000 + "7", "m": {"k": 7}}
    after = len(rows)  # the cap is exact: these rows fit, one more would not
    following = {"id": after, "txt": "\x01" * 1000 + str(after), "m": {"k": after}}
    assert len(jsonutil.dumps(rows)) - 1 <= 1 << 20 < len(jsonutil.dumps([*rows, following])) - 1
    whole = client.post("/api/v1/query", json={"sql": "select 1 as a, [2, 3] as b"})
    assert whole.content.startswith(b'{"columns":["a","b"],"rows":[{"a":1,"b":[2,3]}],')


class Unreadable(Exception):
    """Pickles, and does not unpickle: its ``__init__`` takes other arguments than its args."""

    def __init__(self, table: str, reason: str) -> None:
        super().__init__(f"{table}: {reason}")


class Unsendable(Exception):
    """Does not pickle at all: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        import threading

        self.lock = threading.Lock()


class StorageHiccup(Exception):
    """One of the family's codes on an error that does not unpickle."""

    code, http_status, retryable = "storage_error", 503, True

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} could not be read")
        self.message = f"{path} could not be read"
        self.hint = "try again in a moment"


def unreadable_error(*args: Any) -> Any:  # stands for console.query._query_in_worker
    raise Unreadable("curated.clicks", "the reader broke")


def unsendable_error(*args: Any) -> Any:
    raise Unsendable("the reader broke <here>")


def storage_hiccup(*args: Any) -> Any:
    raise StorageHiccup("warehouse/curated/clicks/data/x.parquet")


def plain_bug(*args: Any) -> Any:
    return {}["missing"]


@pytest.mark.parametrize(
    "fails, status, code, said",
    [
        (unreadable_error, 500, "query_failed", "Unreadable: curated.clicks: the reader broke"),
        (unsendable_error, 500, "query_failed", "Unsendable: the reader broke <here>"),
        (plain_bug, 500, "query_failed", "KeyError: 'missing'"),
        (storage_hiccup, 503, "storage_error", "warehouse/curated/clicks/data/x.parquet could"),
    ],
)
def test_every_error_of_a_query_worker_has_a_code_and_a_message(
    lake_template: Path,
    make_client: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fails: Callable[..., Any],
    status: int,
    code: str,
    said: str,
) -> None:
    """An exception that did not cross the worker's pipe came back a RuntimeError naming the
    pickling failure (or, one that did not unpickle, a TypeError), and the API answered its
    anonymous ``500 internal``; an error outside the family the same. Each now keeps what it
    said, under a stable code: its own when it had one of the family's."""
    from advertisex.console import query

    monkeypatch.setattr(query, "_query_in_worker", fails)  # sent to the worker by its name
    client = make_client(lake_template)
    answer = client.post("/api/v1/query", json={"sql": "select 1"})
    assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    assert said in answer.json()["message"], answer.text
    if code == "query_failed":
        assert "server's log" in answer.json()["message"]
        assert any("Traceback" in record.getMessage() for record in caplog.records)
    page = client.post("/sql", data={"csrf": _csrf(client), "sql": "select 1"})
    assert page.status_code == 400 and said.split(":")[0] in page.text  # was an error page
    monkeypatch.undo()
    assert client.post("/api/v1/query", json={"sql": "select 1 as a"}).json()["rows"] == [{"a": 1}]


def segfault(*args: Any) -> Any:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def killed(*args: Any) -> Any:  # as the system's OOM killer or an operator's kill -9 does
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def exits(*args: Any) -> Any:
    import os

    os._exit(3)


@pytest.mark.parametrize(
    "dies, how",
    [(segfault, "signal 11"), (killed, "signal 9"), (exits, "exit code 3")],
)
def test_a_query_worker_that_dies_is_told_apart_from_one_over_its_memory(
    tmp_path: Path,
    make_client: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    dies: Callable[..., Any],
    how: str,
) -> None:
    """A worker that died of anything was ``400 query_too_large``, "select less": the user
    narrowed a query that may be fine. Only one stopped over its memory share is that now;
    one that died otherwise is ``500 query_worker_failed``, saying to run it again and where
    the server's log says more; and the next query gets a new worker."""
    import advertisex
    from advertisex.console import query

    advertisex.open(data_dir=tmp_path / "data")
    client = make_client(tmp_path / "data", console=_share(64 << 20, queries=1))
    monkeypatch.setattr(query, "_query_in_worker", dies)  # sent to the worker by its name
    monkeypatch.setattr(query, "_oom_kills", lambda: 7)  # no out-of-memory kill meanwhile
    answer = client.post("/api/v1/query", json={"sql": "select 42 as the_statement"})
    assert (answer.status_code, answer.json()["code"]) == (500, "query_worker_failed"), answer.text
    message = answer.json()["message"]
    assert f"the worker process died ({how})" in message, message
    assert "the query may be fine" in message and "run it again" in message, message
    assert "server's log" in message and "query_memory_bytes" not in message
    logged = [r.getMessage() for r in caplog.records if r.name == "advertisex.console"]
    assert any(how in line and "'select 42 as the_statement'" in line for line in logged)
    page = client.post("/sql", data={"csrf": _csrf(client), "sql": "select 1"})
    assert "run it again" in page.text
    monkeypatch.undo()
    assert client.post("/api/v1/query", json={"sql": "select 1 as a"}).json()["rows"] == [{"a": 1}]
    huge = client.post("/api/v1/query", json={"sql": "select length(repeat('x', 800000000)) n"})
    assert (huge.status_code, huge.json()["code"]) == (400, "query_too_large"), huge.text
    assert "its share of console.query_memory_bytes" in huge.json()["message"]
    assert client.post("/api/v1/query", json={"sql": "select 2 as a"}).json()["rows"] == [{"a": 2}]


def test_a_query_worker_stopped_by_the_out_of_memory_killer_is_told_as_memory(
    tmp_path: Path, make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed by the kernel's out-of-memory killer (or a container's memory limit)
    dies of SIGKILL as one killed by hand: told ``query_worker_failed``, "run it again", it
    would be killed again. A SIGKILL while the system's count of such kills went up is
    ``query_too_large``, saying the machine has less memory than the budget gives."""
    import itertools

    import advertisex
    from advertisex.console import query

    advertisex.open(data_dir=tmp_path / "data")
    client = make_client(tmp_path / "data", console=_share(64 << 20, queries=1))
    monkeypatch.setattr(query, "_query_in_worker", killed)
    monkeypatch.setattr(query, "_oom_kills", itertools.count(3).__next__)  # one per look
    answer = client.post("/api/v1/query", json={"sql": "select 1"})
    assert (answer.status_code, answer.json()["code"]) == (400, "query_too_large"), answer.text
    message = answer.json()["message"]
    assert "out-of-memory killer stopped the query's worker" in message, message
    assert "(449 MiB of 449 MiB)" in message and "lower console.query_memory_bytes" in message
    monkeypatch.setattr(query, "_oom_kills", lambda: None)  # unknown: not told as memory
    unknown = client.post("/api/v1/query", json={"sql": "select 1"})
    assert unknown.json()["code"] == "query_worker_failed", unknown.text


# Takes the one console query slot of a data directory as another process serving its
# console does, and says so.
TAKER = """
import sys, time
from pathlib import Path
from advertisex.console.slots import QuerySlots
with QuerySlots(Path(sys.argv[1]), 1).held(wait=60):
    print("held", flush=True)
    time.sleep(120)
"""


def test_an_idle_query_worker_holds_its_slot_until_another_process_needs_it(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    """Idle query workers (120-250 MiB each) were kept a minute after their query, up to
    query_concurrency in each process serving the console, outside console.query_memory_bytes.
    An idle worker keeps its query's slot now: the next query of its process takes it warm;
    a query of another process waits for the slot, and the worker is stopped before it gets
    it, so no more workers live than the budget's shares."""
    import subprocess
    import sys

    import advertisex

    advertisex.open(data_dir=tmp_path / "data")
    client = make_client(tmp_path / "data", console={"query_concurrency": 1})
    reader = client.app.state.reader
    assert client.post("/api/v1/query", json={"sql": "select 1 as a"}).json()["rows"] == [{"a": 1}]
    assert reader.query_workers.alive() == 1 and reader.query_slots.kept() == [0]
    (worker,) = reader.query_workers.pool(0)._idle
    assert client.post("/api/v1/query", json={"sql": "select 2 as a"}).json()["rows"] == [{"a": 2}]
    assert reader.query_workers.pool(0)._idle == [worker]  # the same worker, warm
    taker = subprocess.Popen(
        [sys.executable, "-c", TAKER, str(tmp_path / "data" / "console")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert taker.stdout is not None and taker.stdout.readline() == "held\n"
        # The other process holds the only slot: this one's idle worker was stopped first.
        assert not worker.process.is_alive()
        assert reader.query_workers.alive() == 0 and reader.query_slots.kept() == []
        busy = client.post("/api/v1/query", json={"sql": "select 3 as a"})
        assert (busy.status_code, busy.json()["code"]) == (503, "queries_busy"), busy.text
    finally:
        taker.kill()
        taker.wait()
    assert client.post("/api/v1/query", json={"sql": "select 4 as a"}).json()["rows"] == [{"a": 4}]
    assert reader.query_workers.alive() == 1


def modules_loaded() -> list[str]:  # a job for a query worker: what it has imported
    import sys

    return list(sys.modules)


def test_a_new_query_worker_has_what_a_query_imports_before_its_first_query(
    lake_template: Path,
) -> None:
    """A slot's worker is stopped after a minute idle or when another process needs the
    slot, and the next query forks a new one from the forkserver. That worker imported the
    settings' pydantic models, the query's own module and fastavro (the tables' manifests)
    for its first query: 110-130 ms of its CPU, where the next query took 20. The forkserver
    imports them now (``_PRELOAD``), and a first query imports nothing of the package or its
    libraries."""
    import advertisex
    from advertisex.console.query import QueryWorkers, run_isolated
    from advertisex.util.isolate import Budget

    settings = advertisex.open(data_dir=lake_template).lake.settings
    config = settings.console
    workers = QueryWorkers()
    pool = workers.pool(0)
    try:
        before = set(pool.run(Budget(60, 1 << 30), modules_loaded))
        answer = run_isolated(
            settings,
            "select count(*) as n from curated.impressions",
            max_rows=10,
            timeout=60,
            memory_bytes=config.query_share_bytes,
            max_bytes=config.query_max_bytes,
            pool=pool,
        )
        assert answer.rows()[0]["n"] > 0
        after = pool.run(Budget(60, 1 << 30), modules_loaded)
    finally:
        pool.close()
    heavy = ("advertisex", "pydantic", "pydantic_core", "fastavro", "duckdb", "pyarrow")
    imported = [name for name in after if name not in before]
    assert [name for name in imported if name.split(".")[0] in heavy] == []


BESIDE_THE_COLLECTOR = """
import sys
sys.path.insert(0, sys.argv[1])
from test_console_query_worker import modules_loaded
from advertisex.console.query import QueryWorkers
from advertisex.formats.bounded import decode_pool
from advertisex.util.isolate import Budget
QueryWorkers()  # the console's app is made before the collector starts its decoder workers
print(" ".join(decode_pool().run(Budget(60, 1 << 30), modules_loaded)))
"""


def test_beside_the_collector_the_forkserver_has_what_a_query_imports_too() -> None:
    """In ``serve`` (and ``up``'s) the collector's decoder pool starts the process's
    forkserver, with the decoders' modules: a new query worker forked from it imported the
    query's own in its start (≈ 90 ms of CPU before its first query). The console asks for
    them to be preloaded too; a decoder worker, which imports nothing of the query's itself,
    shows the forkserver had them."""
    import subprocess
    import sys

    here = str(Path(__file__).parent)
    run = subprocess.run(
        [sys.executable, "-c", BESIDE_THE_COLLECTOR, here],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    loaded = set(run.stdout.split())
    assert "advertisex.formats.jsonfmt" in loaded  # the decoders' own
    assert {"advertisex.config", "advertisex.console.query", "advertisex.lake.damage"} <= loaded


def _csrf(client: Any) -> str:
    import re

    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/sql").text)
    assert found
    return found.group(1)


# Holds a console query slot of a data directory, as another process serving its console.
HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def _share(engine_bytes: int, queries: int) -> dict[str, int]:
    """Console settings giving each of ``queries`` queries at once ``engine_bytes`` for
    DuckDB, 1 MiB of answer and its worker's overhead."""
    from advertisex.config import QUERY_WORKER_OVERHEAD_BYTES

    share = engine_bytes + (1 << 20) + QUERY_WORKER_OVERHEAD_BYTES
    return {
        "query_memory_bytes": share * queries,
        "query_concurrency": queries,
        "query_max_bytes": 1 << 20,
    }


def test_the_memory_budget_is_shared_by_the_queries_running_at_once(
    lake_template: Path, make_client: Callable[..., Any]
) -> None:
    """Each query had all of query_memory_bytes for DuckDB, and its worker that plus the
    answer and 384 MiB: 2.4 GiB a query by default, two at once, in each process of
    ``serve --workers N``. Each now gets its share, its worker's whole memory within it."""
    client = make_client(lake_template, console=_share(64 << 20, queries=2))
    sql = "select current_setting('memory_limit') m, current_setting('max_temp_directory_size') t"
    answer = client.post("/api/v1/query", json={"sql": sql})
    assert answer.json()["rows"] == [{"m": "64.0 MiB", "t": "64.0 MiB"}], answer.text
    huge = client.post("/api/v1/query", json={"sql": "select length(repeat('x', 800000000)) n"})
    assert (huge.status_code, huge.json()["code"]) == (400, "query_too_large"), huge.text
    message = huge.json()["message"]
    assert "its share of console.query_memory_bytes: 449 MiB of 898 MiB" in message, message
    assert "console.query_concurrency (2)" in message
    assert client.post("/api/v1/query", json={"sql": "select 2 as a"}).json()["rows"] == [{"a": 2}]


def test_queries_of_every_process_serving_the_console_count_together(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    """Under ``serve --workers N`` every process ran query_concurrency queries of its own, each
    with its own budget. A running query holds a slot of the data directory's now, whichever
    process runs it; a process that dies frees its slot."""
    import subprocess
    import sys

    import advertisex

    advertisex.open(data_dir=tmp_path / "data")
    client = make_client(tmp_path / "data", console={"query_concurrency": 1})
    slot = tmp_path / "data" / "console" / "query-slot-0"
    slot.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(slot)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        busy = client.post("/api/v1/query", json={"sql": "select 1"})
        assert (busy.status_code, busy.json()["code"]) == (503, "queries_busy"), busy.text
        assert "in all the processes serving this lake's console" in busy.json()["message"]
    finally:
        holder.kill()
        holder.wait()
    assert client.post("/api/v1/query", json={"sql": "select 1 as a"}).json()["rows"] == [{"a": 1}]


def test_a_total_too_small_for_its_queries_is_refused_saying_what_to_set() -> None:
    from pydantic import ValidationError

    from advertisex.config import Settings

    assert Settings().console.query_share_bytes == 1 << 30  # 2 GiB for 2 queries
    with pytest.raises(ValidationError) as refused:
        Settings(console={"query_concurrency": 8})
    assert "raise console.query_memory_bytes to 4,026,531,840 or more" in str(refused.value)


def test_a_query_leaves_no_thread_holding_its_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time limit's timer thread, cancelled, still held the engine for a moment after
    the answer: it then dropped the DuckDB connection on its own thread, and a process
    exiting meanwhile aborted (below). The engine is let go by the caller now."""
    import weakref

    import advertisex
    from advertisex.console import query
    from advertisex.lake.query import QueryEngine

    ax = advertisex.open(data_dir=tmp_path / "data")
    ax.create_data_dir()
    engines: list[weakref.ref[QueryEngine]] = []

    class Watched(QueryEngine):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            engines.append(weakref.ref(self))

    monkeypatch.setattr("advertisex.lake.query.QueryEngine", Watched)
    for _ in range(5):
        answer = query.run_query(ax.lake, "select 1 as a", max_rows=10, timeout=30.0)
        assert answer.rows() == [{"a": 1}]
        assert engines[-1]() is None  # no reference left, on any thread


EXIT_SCRIPT = """
import sys
import advertisex
from advertisex.console.query import run_query
ax = advertisex.open(data_dir=sys.argv[1])
ax.create_data_dir()
assert run_query(ax.lake, "select 1 as a", max_rows=10, timeout=30.0).rows() == [{"a": 1}]
"""


def test_a_process_exits_cleanly_right_after_a_query(tmp_path: Path) -> None:
    """A script running a query and exiting aborted 1 time in 2 ("terminate called after
    throwing an instance of '' / FATAL: exception not rethrown", exit 134): the query's
    timer thread closed the DuckDB connection while the interpreter was exiting."""
    import subprocess
    import sys

    for _ in range(5):
        ran = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT, str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (ran.returncode, ran.stderr) == (0, ""), ran.stderr
