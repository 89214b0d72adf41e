"""The worker pool's budgets measure the job, not the start of the worker that runs it;
a warmed pool starts its workers once."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from advertisex.util import isolate
from advertisex.util.isolate import Budget, WorkerPool, receive_message, send

# Run as a program whose workers' preloaded module takes three seconds to import, more than
# the job's whole budget. (Two seconds and a budget of one left a loaded machine one second
# for the job's round trip to the worker.)
PROGRAM = """
import sys
if __name__ == "__main__":
    sys.path[:0] = [{root!r}, {modules!r}]
    from advertisex.util.isolate import Budget, WorkerPool
    pool = WorkerPool(size=1, preload=["slow_start"])
    print(pool.run(Budget(seconds=2, memory_bytes=1 << 30), len, b"abc"))
    pool.close()
"""


@pytest.mark.slow  # a program of its own whose workers take three seconds to start
def test_a_slow_worker_start_is_not_charged_to_the_job(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "slow_start.py").write_text("import time\ntime.sleep(3)\n")
    program = tmp_path / "main.py"
    root = str(Path(__file__).resolve().parents[2])
    program.write_text(PROGRAM.format(root=root, modules=str(modules)))
    done = subprocess.run([sys.executable, str(program)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"


# A user's script calling into the package without an ``if __name__ == "__main__":`` guard:
# multiprocessing would run its body again in every worker it starts by forkserver.
UNGUARDED = """
import sys
sys.path.insert(0, {root!r})
print("the script's body ran", flush=True)
from advertisex.util.isolate import Budget, WorkerPool
pool = WorkerPool(size=2)
budget = Budget(seconds=60, memory_bytes=1 << 30)
print(pool.run(budget, len, b"abc"), pool.run(budget, len, b"ab"), flush=True)
pool.close()
"""


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_a_users_script_runs_once_whatever_workers_it_starts(tmp_path: Path, how: str) -> None:
    script = UNGUARDED.format(root=str(Path(__file__).resolve().parents[2]))
    if how == "file":
        program = tmp_path / "report.py"
        program.write_text(script)
        done = subprocess.run([sys.executable, str(program)], capture_output=True, text=True)
    else:  # python - <<EOF: the workers once looked for a file named "<stdin>"
        done = subprocess.run(
            [sys.executable, "-"], input=script, capture_output=True, text=True, cwd=tmp_path
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["the script's body ran", "3 2"]
    assert "Traceback" not in done.stderr, done.stderr


def test_jobs_that_arrive_while_the_pool_warms_wait_for_its_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[int] = []
    real = isolate._Worker

    def counted(context: Any, preload: tuple[str, ...], warm: Any = None) -> Any:
        started.append(1)
        return real(context, preload, warm)

    monkeypatch.setattr(isolate, "_Worker", counted)
    pool = WorkerPool(size=2)
    try:
        pool.warm()
        pool.warm()  # already warming: nothing more
        budget = Budget(seconds=60, memory_bytes=1 << 30)
        with ThreadPoolExecutor(max_workers=2) as jobs:
            pids = set(jobs.map(lambda _: pool.run(budget, os.getpid), range(6)))
    finally:
        pool.close()
    assert len(started) == 2  # the two warmed workers, none started by a waiting job
    assert len(pids) <= 2 and os.getpid() not in pids


def test_messages_are_received_as_they_were_sent() -> None:
    ours, theirs = multiprocessing.Pipe()
    messages = ["ready", b"", (len, (b"y" * 3_000_001,)), {"rows": list(range(50_000))}]
    sender = threading.Thread(target=lambda: [send(theirs, m) for m in messages])
    sender.start()  # a message bigger than the pipe's buffer needs a reader meanwhile
    try:
        assert [receive_message(ours) for _ in messages] == messages
    finally:
        sender.join()
    theirs.close()
    with pytest.raises(EOFError):
        receive_message(ours)
    ours.close()


def test_a_shed_pool_stops_its_idle_workers_and_starts_one_for_the_next_job() -> None:
    pool = WorkerPool(size=2)
    try:
        budget = Budget(seconds=60, memory_bytes=1 << 30)
        first = pool.run(budget, os.getpid)
        [idle] = pool._idle
        pool.shed()
        assert pool._idle == [] and not idle.process.is_alive()
        again = pool.run(budget, os.getpid)  # the pool is still open
        assert again != first and again != os.getpid()
    finally:
        pool.close()


class _Unreadable(Exception):
    """Pickles, and does not unpickle: its ``__init__`` takes other arguments than its args."""

    def __init__(self, table: str, reason: str) -> None:
        super().__init__(f"{table}: {reason}")
        self.code, self.http_status = "storage_error", 503


def _raise_unreadable() -> None:
    raise _Unreadable("curated.clicks", "the reader broke")


def _raise_unsendable() -> None:
    error = ValueError("holds a lock")
    error.lock = threading.Lock()  # type: ignore[attr-defined]
    raise error


def _answer_unsendable() -> Any:
    return threading.Lock()


def test_an_error_that_cannot_cross_the_pipe_is_told_as_it_was_said() -> None:
    """It came back as a RuntimeError naming the pickling failure, what it said lost, or
    (one that did not unpickle) as the caller's TypeError."""
    pool = WorkerPool(size=1)
    try:
        budget = Budget(seconds=60, memory_bytes=1 << 30)
        with pytest.raises(isolate.WorkerError) as unreadable:
            pool.run(budget, _raise_unreadable)
        told = unreadable.value
        assert str(told) == "_Unreadable: curated.clicks: the reader broke"
        assert told.attributes == {"code": "storage_error", "http_status": 503}
        assert "_raise_unreadable" in told.trace  # the worker's traceback, for a log
        with pytest.raises(isolate.WorkerError, match="ValueError: holds a lock"):
            pool.run(budget, _raise_unsendable)
        with pytest.raises(isolate.WorkerError, match="answer could not be sent"):
            pool.run(budget, _answer_unsendable)
        assert pool.run(budget, len, b"abc") == 3
    finally:
        pool.close()


@pytest.mark.parametrize(("resident", "handed_back"), [(200 << 20, False), (300 << 20, True)])
def test_a_worker_keeps_freed_memory_for_its_next_job_below_its_keep(
    monkeypatch: pytest.MonkeyPatch, resident: int, handed_back: bool
) -> None:
    released: list[int] = []
    monkeypatch.setattr(isolate, "_resident_bytes", lambda pid: resident)
    monkeypatch.setattr(isolate, "release_memory", lambda: released.append(1))
    assert isolate.KEEP_BYTES == 256 << 20
    assert isolate.settle() is handed_back
    assert len(released) == int(handed_back)


def test_large_buffers_travel_beside_the_pickle_and_come_back_equal() -> None:
    import pickle

    import pyarrow as pa

    table = pa.table({"raw": ["x" * 100] * 20_000, "n": list(range(20_000))})
    segment = bytes(range(256)) * 4096  # 1 MiB
    ours, theirs = multiprocessing.Pipe()
    message = ("ok", table, pickle.PickleBuffer(segment), {"small": b"abc"})
    sender = threading.Thread(target=send, args=(theirs, message))
    sender.start()
    try:
        got = receive_message(ours)
    finally:
        sender.join()
        ours.close()
        theirs.close()
    assert got[0] == "ok" and got[3] == {"small": b"abc"}
    assert got[1].equals(table)
    assert bytes(got[2]) == segment


def test_the_pickle_itself_stays_small_whatever_the_buffers() -> None:
    import pickle

    import pyarrow as pa

    table = pa.table({"raw": ["x" * 100] * 20_000})
    ours, theirs = multiprocessing.Pipe()
    sender = threading.Thread(
        target=send, args=(theirs, (table, pickle.PickleBuffer(b"y" * (1 << 20))))
    )
    sender.start()
    try:
        head = ours.recv_bytes()  # the first message: the count of buffers, then the pickle
        parts = [ours.recv_bytes() for _ in range(int.from_bytes(head[:8], "big"))]
    finally:
        sender.join()
        ours.close()
        theirs.close()
    assert len(head) < 4096  # 2 MB of texts and bytes went beside it, not inside
    assert sum(len(p) for p in parts) >= 3_000_000


def test_a_workers_large_bytes_argument_arrives_as_bytes() -> None:
    pool = WorkerPool(size=1)
    try:
        budget = Budget(seconds=60, memory_bytes=1 << 30)
        assert pool.run(budget, type, b"z" * (1 << 20)) is bytes
        assert pool.run(budget, len, b"z" * (1 << 20)) == 1 << 20
    finally:
        pool.close()


def loaded(name: str) -> bool:
    return name in sys.modules


def test_a_pool_started_after_another_has_its_own_preload_in_its_workers() -> None:
    """A process has one forkserver, preloaded by the first pool; a later pool's workers
    still import what it preloads (the decoders refuse pandas that way) before any job."""
    first = WorkerPool(size=1)
    budget = Budget(seconds=60, memory_bytes=1 << 30)
    try:
        assert not first.run(budget, loaded, "colorsys")  # the forkserver runs, without it
    finally:
        first.close()
    later = WorkerPool(size=1, preload=("colorsys",))
    try:
        assert later.run(budget, loaded, "colorsys")
    finally:
        later.close()


_warmed_here = False


def _warm() -> None:
    global _warmed_here
    _warmed_here = True


def _was_warmed() -> bool:
    return _warmed_here


def _warm_fails() -> None:
    raise RuntimeError("no engine here")


def test_a_worker_runs_its_warm_up_before_its_first_job() -> None:
    """Decoder workers start their engines before the batch's first segment comes."""
    budget = Budget(seconds=60, memory_bytes=1 << 30)
    for warm, warmed in ((_warm, True), (None, False), (_warm_fails, False)):
        pool = WorkerPool(size=1, warm=warm)
        try:
            assert pool.run(budget, _was_warmed) is warmed  # a failed warm-up is no failure
        finally:
            pool.close()


def test_the_decoder_workers_warm_up_decodes_each_format() -> None:
    from advertisex.formats import bounded

    bounded.warm_worker()  # raises if a format's decoder cannot read its record
    assert bounded.decode_pool()._warm is bounded.warm_worker


def test_the_decoder_workers_warm_up_loads_no_polars() -> None:
    """The warm-up's Avro record is one the compiled reader reads: a record it refused sent
    every worker to polars-avro, which imported polars (0.2 s of CPU and 32 MiB a worker at
    every command's start)."""
    from pathlib import Path

    from advertisex import native

    if not native.available():
        pytest.skip("the helpers were not built: polars-avro reads every container")
    warm_and_tell = (
        "import sys; from advertisex.formats.bounded import warm_worker; warm_worker(); "
        "print(sorted(m for m in ('polars', 'polars_avro') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    loaded = subprocess.run(
        [sys.executable, "-c", warm_and_tell], capture_output=True, text=True, check=True, cwd=root
    )
    assert loaded.stdout.strip() == "[]"


GONE_CALLER = """
import sys, threading, time
from multiprocessing import Pipe
from advertisex.util import isolate

parent, child = Pipe()
if sys.argv[1] == "before-ready":
    parent.close()
else:  # a job sent, then the caller gone before its answer
    def leave():
        assert parent.recv() == "ready"
        isolate.send(parent, (time.sleep, (0.3,)))
        parent.close()
    threading.Thread(target=leave).start()
isolate._serve(child)
print("ended")
"""


@pytest.mark.parametrize("when", ["before-ready", "before-the-answer"])
def test_a_worker_whose_caller_is_gone_ends_without_a_traceback(when: str) -> None:
    """A command that stopped at once (another processor holding the lake) left its decoder
    workers a broken pipe to say ready or answer into: they printed a traceback on the
    command's standard error."""
    done = subprocess.run(
        [sys.executable, "-c", GONE_CALLER, when], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip() == "ended"
