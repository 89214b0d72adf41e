"""Run a function in a worker process under a time and a memory budget.

Decoders are native code fed with strangers' bytes: one can loop forever (polars-avro on
an Avro block with a stray byte) or inflate a small body into gigabytes, and neither can
be stopped from inside the process it runs in. A worker process can: the caller waits at
most the time budget while watching the worker's resident memory, and kills it on either
breach; a fresh worker takes the next job. Workers come from a forkserver that has already
imported the modules named in ``preload``, so a replacement costs milliseconds, not an
interpreter start, and every worker dies with the process that started it.

>>> pool = WorkerPool(size=1)                        # doctest: +SKIP
>>> pool.run(Budget(seconds=5, memory_bytes=1 << 30), len, b"abc")  # doctest: +SKIP
3
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_POLL_SECONDS = 0.02  # how often the caller looks at the worker's clock and memory
# How long a new worker may take to say it is ready; a job's budget starts only then.
_START_SECONDS = 60.0
# A worker keeps the memory its jobs freed, for the next job, while its anonymous resident
# memory stays under this; above it, what a job freed goes back to the system. Handing it
# back after every job made every job fault its buffers in again, zeroed by the kernel: the
# decoder workers' system time was a third of their CPU (0.7-0.8 s and ~300 k page faults
# per 1 M events). A worker over its preloaded modules (~120 MiB) keeps ~40 MiB for the
# next segment at 1-2 M events; one that framed a 100 MB segment (400-500 MiB) is trimmed.
KEEP_BYTES = 256 << 20


@dataclass(frozen=True)
class Budget:
    """What one job may spend: wall-clock seconds and resident memory of its worker."""

    seconds: float
    memory_bytes: int


class BudgetExceeded(Exception):
    """The job was stopped: ``kind`` is ``time``, ``memory``, ``crash`` (the worker died:
    ``exitcode`` as :attr:`multiprocessing.Process.exitcode` says, when known) or
    ``cancelled`` (its caller was told to stop)."""

    def __init__(self, kind: str, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.exitcode = kind, message, exitcode


class WorkerError(Exception):
    """An exception a job raised that could not cross the pipe as itself (its class does not
    pickle, or does not unpickle: an ``__init__`` of other arguments than its ``args``), or
    an answer that could not: told by its type's name, its message, the attributes callers
    map errors by (``code``, ``http_status``, ``hint``, ``retryable``, when it has them) and
    its traceback as text, for the log."""

    def __init__(
        self, kind: str, message: str, trace: str = "", attributes: dict[str, Any] | None = None
    ) -> None:
        super().__init__(kind, message, trace, attributes)
        self.kind, self.message, self.trace = kind, message, trace
        self.attributes = attributes or {}

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}" if self.message else self.kind

    @classmethod
    def of(cls, error: BaseException, message: str | None = None) -> WorkerError:
        import traceback

        attributes = {
            name: value
            for name in ("code", "http_status", "hint", "retryable")
            if isinstance(value := getattr(error, name, None), str | int | bool)
        }
        text = getattr(error, "message", None)
        return cls(
            type(error).__name__,
            message or (text if isinstance(text, str) else _message_of(error)),
            "".join(traceback.format_exception(error)),
            attributes,
        )


def _message_of(error: BaseException) -> str:
    """``str(error)``, or what there is when that fails too (a broken ``__str__``)."""
    try:
        return str(error)
    except Exception:
        return repr(error.args)[:1000] if isinstance(error.args, tuple) else ""


def crossing(error: Exception) -> Exception:
    """``error`` if it comes out of the pipe as itself, else a :class:`WorkerError` saying it."""
    from multiprocessing.reduction import ForkingPickler

    try:
        pickle.loads(ForkingPickler.dumps(error))
    except Exception:
        return WorkerError.of(error)
    return error


class _Worker:
    def __init__(
        self, context: Any, preload: tuple[str, ...] = (), warm: Callable[[], Any] | None = None
    ) -> None:
        parent, child = context.Pipe()
        self.conn = parent
        self.process = context.Process(target=_serve, args=(child, preload, warm), daemon=True)
        with _without_main():
            self.process.start()
        child.close()
        try:
            ready = parent.poll(_START_SECONDS) and parent.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise BudgetExceeded("crash", "a worker process did not start")

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class WorkerPool:
    """Up to ``size`` worker processes, each running one job at a time (thread-safe)."""

    def __init__(
        self, size: int = 2, preload: Iterable[str] = (), warm: Callable[[], Any] | None = None
    ) -> None:
        """``preload``: modules the workers import before they say they are ready; ``warm``:
        a module-level function each worker runs once it has said so, before its first job
        (what a first job would otherwise start: thread pools, connections)."""
        import multiprocessing

        self.size = size
        self._context = multiprocessing.get_context(
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        )
        if self._context.get_start_method() == "forkserver":
            self._context.set_forkserver_preload(_forkserver_preload(preload))
        self._preload = tuple(preload)
        self._warm = warm
        self._idle: list[_Worker] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a worker came in, or did not start
        self._closed = False
        self._warming = 0  # workers being started in the background
        self._busy = 0  # workers checked out

    def run(
        self,
        budget: Budget,
        fn: Callable[..., T],
        *args: Any,
        cancel: threading.Event | None = None,
    ) -> T:
        """``fn(*args)`` in a worker; its exception is re-raised here, a breach raises
        :class:`BudgetExceeded`, and ``cancel`` being set stops the job at once (kind
        ``cancelled``). ``fn`` must be importable (a module-level function)."""
        with self._slots:
            worker = self._checkout()
            try:
                result = self._run(worker, budget, fn, args, cancel)
            except BaseException:
                self._discard(worker)  # over its budget, or interrupted: its state is unknown
                raise
            self._checkin(worker)
        status, value = result
        if status == "error":
            raise value
        return value  # type: ignore[no-any-return]

    def warm(self) -> None:
        """Start the pool's workers in the background, one after the other: the first
        starts the forkserver, whose imports take a second or two, the others then take
        milliseconds. A job that arrives meanwhile waits for one of them instead of
        starting a worker of its own."""

        def start(count: int) -> None:
            for left in range(count, 0, -1):
                try:
                    worker = _Worker(self._context, self._preload, self._warm)
                except Exception:  # a failure here shows again, with its cause, on first use
                    with self._changed:
                        self._warming -= left
                        self._changed.notify_all()
                    return
                self._checkin(worker, warmed=True)

        with self._lock:
            count = self.size - len(self._idle) - self._warming - self._busy
            if count <= 0 or self._closed:
                return
            self._warming += count
        threading.Thread(target=start, args=(count,), name="worker-pool-warm", daemon=True).start()

    def shed(self) -> None:
        """Stop the idle workers, the pool staying open: each holds 100-180 MiB (its
        preloaded modules, what its jobs left) while it waits, and a job after this starts
        one again (milliseconds, forked from the forkserver)."""
        with self._changed:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()

    def alive(self) -> int:
        """How many of the pool's workers are alive now: idle, or running a job."""
        with self._changed:
            return sum(worker.process.is_alive() for worker in self._idle) + self._busy

    def close(self) -> None:
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()
        for worker in idle:
            worker.kill()

    def _checkout(self) -> _Worker:
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError("the worker pool is closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.process.is_alive():
                        self._busy += 1
                        return worker
                    worker.kill()
                if not self._warming:
                    self._busy += 1
                    break
                self._changed.wait()  # one being warmed is nearer than a new one
        try:
            return _Worker(self._context, self._preload, self._warm)
        except BaseException:
            with self._changed:
                self._busy -= 1
            raise

    def _checkin(self, worker: _Worker, warmed: bool = False) -> None:
        with self._changed:
            if warmed:
                self._warming -= 1
            else:
                self._busy -= 1
            if not self._closed:
                self._idle.append(worker)
                self._changed.notify()
                return
        worker.kill()

    def _discard(self, worker: _Worker) -> None:
        with self._changed:
            self._busy -= 1
        worker.kill()

    def _run(
        self,
        worker: _Worker,
        budget: Budget,
        fn: Callable[..., T],
        args: Any,
        cancel: threading.Event | None = None,
    ) -> Any:
        try:
            send(worker.conn, (fn, tuple(_out_of_band(arg) for arg in args)))
        except (BrokenPipeError, OSError):
            raise BudgetExceeded("crash", "the worker process was gone") from None
        deadline = time.monotonic() + budget.seconds
        peak = 0
        while not worker.conn.poll(_POLL_SECONDS):
            peak = max(peak, _resident_bytes(worker.process.pid))
            if peak > budget.memory_bytes:
                raise BudgetExceeded(
                    "memory",
                    f"stopped after using {peak >> 20} MiB, over the budget of "
                    f"{budget.memory_bytes >> 20} MiB",
                )
            if time.monotonic() > deadline:
                raise BudgetExceeded("time", f"stopped after {budget.seconds:g} s, the time budget")
            if cancel is not None and cancel.is_set():
                raise BudgetExceeded("cancelled", "stopped: the process was told to stop")
            if not worker.process.is_alive():
                break
        try:
            return receive_message(worker.conn)
        except (EOFError, OSError):
            worker.process.join(1)
            code = worker.process.exitcode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            raise BudgetExceeded("crash", f"the worker process died ({how})", code) from None
        except Exception as error:  # an answer that pickled there and does not unpickle here
            raise WorkerError.of(error, f"the worker's answer could not be read: {error}") from None


def start_forkserver(preload: Iterable[str]) -> bool:
    """Start this process's forkserver now, importing ``preload`` as a :class:`WorkerPool`
    with the same ``preload`` has it do, and return at once: the imports run in that process
    while this one goes on, and the pool's workers are then forked from it in milliseconds.
    False where processes are not forked from a server (spawned: macOS, Windows)."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(_forkserver_preload(preload))
    forkserver.ensure_running()
    return True


# Set on a thread while it starts one of this module's workers (:func:`_without_main`).
_starting = threading.local()


@contextmanager
def _without_main() -> Iterator[None]:
    """Start a worker (on this thread) without the parent's main module.

    multiprocessing has every child it starts by forkserver or spawn run the parent's
    ``__main__`` again (as ``__mp_main__``), so that functions defined there can be sent to
    it. A worker here runs this package's functions only, and that run cost every embedding
    user: a script that called the Python API without an ``if __name__ == "__main__":``
    guard had its whole body (ingest, process …) run again in each decoder worker; a script
    read from standard input (``python - <<EOF``) had each worker print a traceback for the
    file ``<stdin>`` it could not find; and the command line had each worker import the
    CLI's modules (≈ 0.1 s of CPU a worker). The preparation data a child is started with
    drops the main module here, for this thread's starts only: other users of
    multiprocessing in the same process keep theirs.
    """
    _install_preparation_filter()
    _starting.without_main = True
    try:
        yield
    finally:
        _starting.without_main = False


def _install_preparation_filter() -> None:
    """Wrap ``multiprocessing.spawn.get_preparation_data`` (which the forkserver and spawn
    starters look up when they start a child) once, to honour :func:`_without_main`."""
    from multiprocessing import spawn

    prepare = spawn.get_preparation_data
    if getattr(prepare, "_advertisex", False):
        return

    def preparation_data(name: str) -> dict[str, Any]:
        data: dict[str, Any] = prepare(name)
        if getattr(_starting, "without_main", False):
            data.pop("init_main_from_name", None)
            data.pop("init_main_from_path", None)
        return data

    preparation_data._advertisex = True  # type: ignore[attr-defined]
    spawn.get_preparation_data = preparation_data


# Modules this process's forkserver imports after those of the pool that starts it
# (:func:`preload_too`).
_PRELOAD_TOO: list[str] = []


def preload_too(modules: Iterable[str]) -> None:
    """Have this process's forkserver import ``modules`` too, whichever pool starts it.

    A process has one forkserver, preloaded by the first pool that starts a worker: in
    ``serve`` (and ``up``'s) the collector's decoder pool, and the console's query workers
    forked from it imported their own modules each (:func:`_serve`), ≈ 90 ms of CPU on the
    path of a new worker's first query. Said before the pools are made (the console's app
    is made before the collector starts), the forkserver imports them once, after the
    starting pool's own; a forkserver already running is not changed.
    """
    with _SHARED_LOCK:
        _PRELOAD_TOO.extend(name for name in modules if name not in _PRELOAD_TOO)


def _forkserver_preload(preload: Iterable[str]) -> list[str]:
    """What the forkserver imports: this module (its workers' loop), then ``preload``, then
    what :func:`preload_too` added."""
    first = [__name__, *preload]
    return first + [name for name in _PRELOAD_TOO if name not in first]


def _resident_bytes(pid: int | None) -> int:
    """Anonymous resident memory of ``pid``: what it allocated, not the shared libraries it
    mapped (Linux /proc; 0 where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            fields = handle.read().split()
        return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _serve(conn: Any, preload: tuple[str, ...] = (), warm: Callable[[], Any] | None = None) -> None:
    """A worker's life: run jobs until the pipe closes; die with the parent. A caller gone
    (the pipe broken as the worker says ready or answers: a command that stopped at once,
    say another processor holding the lake) ends it quietly, as a closed pipe does."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # A process has one forkserver, preloaded by the pool that started it: a pool started
    # after another one with other modules gets workers without its own (the decoders'
    # refusal of pandas among them). Importing them here costs nothing when they are in.
    for name in preload:
        importlib.import_module(name)
    try:
        conn.send("ready")
    except OSError:  # BrokenPipeError: nobody is waiting for this worker any more
        return
    if warm is not None:  # a job sent meanwhile waits in the pipe, as it would have for this
        try:
            warm()
        except Exception:  # a warm-up is no job: what failed shows again on the first one
            pass
        settle()
    while True:
        try:
            fn, args = receive_message(conn)
        except (EOFError, OSError):
            return
        try:
            args = tuple(_argument(arg, fn) for arg in args)
            answer: tuple[str, Any] = ("ok", fn(*args))
        except Exception as error:
            answer = ("error", crossing(error))
        try:
            send(conn, answer)
        except OSError:  # the caller is gone: nobody to answer
            return
        except Exception as error:  # an answer that does not pickle
            failed = WorkerError.of(error, f"the worker's answer could not be sent: {error}")
            send(conn, ("error", failed))
        del answer, fn, args
        settle()


def takes_views(fn: F) -> F:
    """Mark ``fn`` as taking a large ``bytes`` argument as a read-only ``memoryview`` of the
    buffer the worker read it into (formats ``B``, as ``bytes`` index), not as ``bytes``: the
    copy a worker would make held the argument twice (a 100 MB segment being framed: 200 MB).
    Other functions get ``bytes``, as they were sent."""
    fn.takes_views = True  # type: ignore[attr-defined]
    return fn


def _argument(arg: Any, fn: Callable[..., Any]) -> Any:
    """An argument as ``fn`` takes it (:func:`takes_views`); a mapped file the caller sent by
    its name (:class:`~advertisex.util.mapped.MappedFile`) is mapped here, the same pages."""
    from advertisex.util.mapped import FileName

    if isinstance(arg, FileName):
        arg = arg.map().view
    if not isinstance(arg, memoryview):
        return arg
    if getattr(fn, "takes_views", False):
        return arg.cast("B")  # Arrow's buffers show as signed chars ('b')
    return bytes(arg)


def settle() -> bool:
    """After a job: hand what it freed back to the system if this process is over
    :data:`KEEP_BYTES` of anonymous memory, else keep it for the next job. True if handed back."""
    if _resident_bytes(os.getpid()) <= KEEP_BYTES:
        return False
    release_memory()
    return True


def release_memory() -> None:
    """Hand the memory freed by the last job back to the system: Arrow's allocator and
    the C library's keep what a job freed for the next one, so a worker that decoded a
    big segment went on holding its peak (a decoder worker 550-640 MiB through a 10 M-event
    backlog, most of it free). A few milliseconds after a job of many (:func:`settle`)."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass


# Buffers (and arguments) of at least this many bytes travel beside a message's pickle.
_OUT_OF_BAND_BYTES = 1 << 16


def _out_of_band(arg: Any) -> Any:
    """``arg``, a large ``bytes`` marked to travel beside the pickle (the worker gets it back
    as ``bytes``: :func:`_serve`)."""
    if isinstance(arg, bytes) and len(arg) >= _OUT_OF_BAND_BYTES:
        return pickle.PickleBuffer(arg)
    return arg


def send(conn: Any, obj: Any) -> None:
    """Send ``obj`` with its large buffers beside its pickle (protocol 5, out of band): an
    Arrow table's buffers and the ``bytes`` a caller wrapped in ``pickle.PickleBuffer``, of
    at least 64 KiB, go to the pipe from where they are, one ``Connection`` message each
    after the pickle's.
    Pickled in band, a decoded frame or a segment's bytes were copied into the pickle and
    that grown again two or three times, every copy into freshly faulted pages; and the
    receiver copied each Arrow buffer out of the pickle once more. Read with
    :func:`receive_message`."""
    import io
    from multiprocessing.reduction import ForkingPickler

    views: list[memoryview] = []

    def beside(buffer: pickle.PickleBuffer) -> bool:
        """Out of band (False) when large; a small one is cheaper inside the pickle than as a
        message of its own (a system call and a wake-up of the reader each)."""
        view = _contiguous(buffer)
        if view.nbytes < _OUT_OF_BAND_BYTES:
            return True
        views.append(view)
        return False

    out = io.BytesIO()
    # Positional: ForkingPickler's __init__ takes no keywords.
    ForkingPickler(out, 5, True, beside).dump(obj)  # all of it before anything is written
    conn.send_bytes(struct.pack("!Q", len(views)) + out.getbuffer())
    for view in views:
        conn.send_bytes(view)


def _contiguous(buffer: pickle.PickleBuffer) -> memoryview:
    try:
        return buffer.raw()
    except BufferError:  # not contiguous: copied (Arrow's and bytes' buffers never are)
        return memoryview(memoryview(buffer).tobytes())


def receive_message(conn: Any) -> Any:
    """What :func:`send` sent: the pickle, then its buffers, each read into one buffer of its
    size (from Arrow's memory pool once Arrow is loaded, which keeps freed memory for the
    next: no fresh pages to fault in) that the object it rebuilds uses as it is."""
    from multiprocessing.reduction import ForkingPickler

    head = _message(conn)
    (count,) = struct.unpack_from("!Q", head)
    buffers = [_message(conn, pooled=True) for _ in range(count)]
    return ForkingPickler.loads(memoryview(head)[8:], buffers=buffers)


def _message(conn: Any, pooled: bool = False) -> Any:
    """One ``Connection`` message's bytes (its framing: a 4-byte big-endian size, -1 then 8
    bytes above 2 GiB), read into one buffer of its size. CPython's ``Connection`` reads a
    message of n bytes by asking the pipe for all that is left each time, so every 64 KiB
    the pipe gives cost a buffer of what is left allocated and shrunk again (three times the
    CPU for a message of megabytes). ``pooled``: the buffer from Arrow's pool, once Arrow is
    loaded."""
    if not hasattr(os, "readv"):
        return conn.recv_bytes()
    fd = conn.fileno()
    (size,) = struct.unpack("!i", _read_exactly(fd, 4))
    if size == -1:
        (size,) = struct.unpack("!Q", _read_exactly(fd, 8))
    arrow = sys.modules.get("pyarrow") if pooled else None
    return _read_exactly(fd, size, arrow.allocate_buffer(size) if arrow else None)


def _read_exactly(fd: int, size: int, into: Any = None) -> Any:
    """``size`` bytes from ``fd`` (EOFError if it ends first, as ``Connection.recv``), in a
    new ``bytearray`` or in ``into`` (a writable buffer of that size)."""
    buffer = bytearray(size) if into is None else into
    view = memoryview(buffer)
    done = 0
    while done < size:
        got = os.readv(fd, [view[done:]])
        if got == 0:
            raise EOFError("the pipe ended inside a message")
        done += got
    return buffer


def _die_with_parent() -> None:
    die_with_parent(signal.SIGKILL)


def die_with_parent(sig: int) -> None:
    """Have the kernel send this process ``sig`` when its parent dies (Linux's
    PR_SET_PDEATHSIG; elsewhere nothing: children outlive a killed parent)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


_SHARED: dict[tuple[str, ...], WorkerPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(
    size: int, preload: tuple[str, ...], warm: Callable[[], Any] | None = None
) -> WorkerPool:
    """One pool per (size, preload, warm) for the whole process, closed when it exits."""
    key = (str(size), *preload, f"{warm.__module__}.{warm.__qualname__}" if warm else "")
    with _SHARED_LOCK:
        pool = _SHARED.get(key)
        if pool is None:
            pool = _SHARED[key] = WorkerPool(size, preload, warm)
            atexit.register(pool.close)
        return pool
