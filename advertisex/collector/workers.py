"""``serve --workers N``: N collector processes on one port, under one supervisor.

One Python process tops out near one core; a pixel or click costs tens of microseconds
of interpreter time, so intake at tens of thousands of requests a second needs every
core. The supervisor (the process ``serve`` started) does what must happen once, then
forks the workers, which each run the usual collector app on uvicorn:

* it holds the collector id's lock and seals what a previous run left open, so workers
  never recover (and never seal) one another's open files;
* it binds one listening socket per worker with ``SO_REUSEPORT`` — the kernel spreads
  new connections evenly over them — after checking the port is free without that
  option, so two collectors can never end up sharing a port by accident. (Where the
  option is missing, every worker accepts on one shared socket.) A worker's socket
  stays open in the supervisor, so connections waiting for a worker that died are
  served by its replacement;
* each worker names its segments with its own boot token, writes and fsyncs them
  before it answers (the same group commit, per worker), and shares the
  ``Idempotency-Key`` memory (:class:`~advertisex.collector.idempotency.SharedIdempotency`)
  and the metrics (prometheus_client's multiprocess mode) through a directory the
  supervisor wipes at start;
* SIGTERM or Ctrl-C reaches the supervisor, which passes SIGTERM to every worker; each
  stops like a single collector (in-flight requests finish, segments are sealed). A
  worker that dies unexpectedly is replaced, after the supervisor sealed its segments
  and dropped its unfinished idempotency claims. Workers die with the supervisor (PDEATHSIG).

Workers are forked, not spawned: they inherit the settings, the app factory and the
web console wrapper as they are, and start in milliseconds.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from advertisex.collector.idempotency import release_claims
from advertisex.collector.segments import new_boot, recover
from advertisex.collector.service import WorkerSlot, collector_id, hold_lock
from advertisex.config import Settings
from advertisex.errors import AdvertiseXError
from advertisex.landing.zone import LandingZone
from advertisex.util.cores import usable_cores
from advertisex.util.isolate import die_with_parent

log = logging.getLogger("advertisex.collector")
_RESTARTS = 5  # quick deaths in a row before the supervisor gives up
_QUICK = 10.0  # a worker that dies sooner than this after starting died "quickly"
_START_TIMEOUT = 120.0


class WorkersFailed(AdvertiseXError):
    code = "workers_failed"


def default_workers(settings: Settings) -> int:
    """``collector.workers``, or one per CPU core this process may run on."""
    configured = settings.collector.workers
    if configured:
        return configured
    return usable_cores()


@dataclass
class _Worker:
    slot: WorkerSlot
    sock: socket.socket
    pid: int
    started: float


def supervise(
    settings: Settings,
    count: int,
    run_worker: Callable[[WorkerSlot, socket.socket, Callable[[], None]], None],
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run ``count`` workers until SIGTERM/SIGINT; ``run_worker(slot, sock, ready)`` serves
    one (it calls ``ready()`` once listening, and returns when stopped)."""
    config = settings.collector
    zone = LandingZone(settings.landing_dir)
    ident = collector_id(settings)
    lock = hold_lock(zone, ident)
    shared = zone.root / "_collectors" / f"{ident}.workers"
    try:
        recovered = recover(zone, ident)
        if recovered:
            log.warning("sealed %d segment(s) left open by a previous run", len(recovered))
        shutil.rmtree(shared, ignore_errors=True)
        (shared / "metrics").mkdir(parents=True)
        sockets = bind(config.host, config.port, count)
        host, port = sockets[0].getsockname()[:2]
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        grace = config.shutdown_grace_seconds + 30  # for every worker to stop after SIGTERM
        _Supervisor(zone, ident, shared, sockets, run_worker, grace).run(count, url, on_ready)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        os.close(lock)


def bind(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port`` (one shared socket without SO_REUSEPORT)."""
    from advertisex.collector.server import listen

    probe = listen(host, port)  # without SO_REUSEPORT: fails if anyone else has the port
    if not hasattr(socket, "SO_REUSEPORT"):
        return [probe] * count
    port = probe.getsockname()[1]
    probe.close()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(4096)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


class _Supervisor:
    def __init__(
        self,
        zone: LandingZone,
        ident: str,
        shared: Path,
        sockets: list[socket.socket],
        run_worker: Callable[[WorkerSlot, socket.socket, Callable[[], None]], None],
        grace: float,
    ) -> None:
        self.zone, self.ident, self.shared, self.grace = zone, ident, shared, grace
        self.sockets, self.run_worker = sockets, run_worker
        self.workers: dict[int, _Worker] = {}  # by pid
        self.stopping = threading.Event()
        self.ready_r, self.ready_w = os.pipe()

    def run(self, count: int, url: str, on_ready: Callable[[str], None] | None) -> None:
        previous = {
            sig: signal.signal(sig, lambda signum, frame: self.stopping.set())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for index in range(count):
                self.start(index)
            self.await_ready(count)
            if on_ready is not None:
                on_ready(url)
            self.watch()
        finally:
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self.ready_r)
            os.close(self.ready_w)

    def start(self, index: int) -> None:
        slot = WorkerSlot(index, new_boot(), self.shared)
        sock = self.sockets[index]
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                self._become_worker(slot, sock)
                code = 0
            except BaseException:
                log.exception("collector worker %d failed", index)
            finally:
                _end_worker(code)
        self.workers[pid] = _Worker(slot, sock, pid, time.monotonic())

    def _become_worker(self, slot: WorkerSlot, sock: socket.socket) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)  # until uvicorn takes them over
        os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the supervisor only: one stop, in order
        die_with_parent(signal.SIGTERM)
        os.close(self.ready_r)
        for other in self.sockets:
            if other is not sock:
                other.close()

        def ready() -> None:
            os.write(self.ready_w, b"%d\n" % slot.index)

        from advertisex.collector.metrics import use_shared_metrics

        use_shared_metrics(slot.metrics_dir)
        self.run_worker(slot, sock, ready)

    def await_ready(self, count: int) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        waiting = count
        while waiting:
            if self.stopping.is_set():
                return
            readable, _, _ = select.select([self.ready_r], [], [], 0.1)
            if readable:
                waiting -= os.read(self.ready_r, 4096).count(b"\n")
            for pid, status in self.reap():
                # Reaped here, so forgotten here: stop_all must not wait for it again (a
                # second waitpid of a reaped child is a ChildProcessError, not a stop).
                self.clean_up(self.workers.pop(pid))
                raise WorkersFailed(
                    f"a collector worker exited while starting ({_describe(status)})",
                    hint="see the log lines above; `serve --workers 1` runs a single process",
                )
            if time.monotonic() > deadline:
                raise WorkersFailed(f"collector workers not ready after {_START_TIMEOUT:.0f} s")

    def watch(self) -> None:
        quick_deaths = 0
        while not self.stopping.wait(0.2):
            if select.select([self.ready_r], [], [], 0)[0]:
                os.read(self.ready_r, 4096)  # a replacement worker is listening
            for pid, status in self.reap():
                worker = self.workers.pop(pid)
                log.warning(
                    "collector worker %d exited unexpectedly (%s); starting another",
                    worker.slot.index,
                    _describe(status),
                )
                self.clean_up(worker)
                lived = time.monotonic() - worker.started
                quick_deaths = quick_deaths + 1 if lived < _QUICK else 0
                if quick_deaths >= _RESTARTS:
                    raise WorkersFailed(
                        f"collector workers keep dying ({quick_deaths} within {_QUICK:.0f} s "
                        "of starting); stopped",
                        hint="see the log lines above; `serve --workers 1` runs a single process",
                    )
                self.start(worker.slot.index)

    def reap(self) -> list[tuple[int, int]]:
        """(pid, wait status) of the workers that exited since the last look."""
        gone = []
        for pid in list(self.workers):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                gone.append((pid, status))
        return gone

    def clean_up(self, worker: _Worker) -> None:
        """Seal what a dead worker left open; forget its claims and its live gauges."""
        from prometheus_client import multiprocess

        recover(self.zone, self.ident, boot=worker.slot.boot)
        release_claims(worker.slot.idempotency_path, worker.slot.boot)
        multiprocess.mark_process_dead(worker.pid, str(worker.slot.metrics_dir))

    def stop_all(self) -> None:
        """SIGTERM every worker, wait for them (each seals its segments), kill stragglers."""
        for pid in self.workers:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while self.workers and time.monotonic() < deadline:
            for pid, _ in self.reap():
                self.workers.pop(pid)
            time.sleep(0.05)
        for pid, worker in list(self.workers.items()):
            log.warning("collector worker %d did not stop in time; killing it", worker.slot.index)
            _signal(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            recover(self.zone, self.ident, boot=worker.slot.boot)
        self.workers.clear()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {os.waitstatus_to_exitcode(status)}"


def _end_worker(code: int) -> NoReturn:
    """End a forked worker the way multiprocessing ends a process it started: its
    multiprocessing finalizers first, then ``os._exit`` (never the supervisor's atexit
    handlers, which the fork copied). A worker starts a forkserver for its decoders, whose
    socket lives in a ``pymp-*`` folder under the temporary directory: ``os._exit`` alone
    left one folder behind at every worker's start, a collector restarted for months
    thousands of them. The finalizers remove it (they run only those this process made)."""
    try:
        from multiprocessing import util

        util._exit_function()  # type: ignore[attr-defined]  # as multiprocessing's own children do
    finally:
        os._exit(code)
