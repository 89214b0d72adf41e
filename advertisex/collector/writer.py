"""Durable segment writers with group commit: nothing is acknowledged before it is fsync'd.

Each source has one writer thread that owns one open (temporary, dot-named) segment.
Requests hand it their framed bytes and await a future; the thread takes everything
queued at that moment, appends it, and one ``fdatasync`` covers the whole group — so a
burst of concurrent requests costs one disk flush, and throughput survives fsync. The
blocking file I/O runs off the event loop; the futures are settled back on it.

An ``fdatasync`` is not only time but CPU (about 0.2 ms of it, mostly in the kernel, on
the VM this was measured on), so under a stream of small requests — pixels, clicks —
a group commit starts at most once per ``commit_interval`` (default 2 ms): requests
arriving meanwhile join it instead of paying a flush each. An idle writer commits the
first request at once; when the flush itself takes longer than the interval, the
interval adds nothing. A request waits at most for the flush in progress, the interval's
remainder and its own flush.

A thread's wake-up is costly too where the event loop holds the GIL: each one waits for
the loop to let go of it (up to the switch interval) and costs two context switches. So
the first request of a group that is not due yet sets a timer on the event loop, which
wakes the thread once, when the group is due (the thread used to wake at once and sleep
out the remainder). (Opening segments ``O_DSYNC``, to make write and flush one system
call, measured no different.)

A segment is sealed (renamed into view for the processor) by size or by age — once a
second per writer by default. Sealing (close, rename, a directory fsync, the capacity's
bookkeeping) and creating the next segment (its name made durable by another directory
fsync) are each a journal commit on ext4, which waits for everyone's writeback: done
between two groups, they held every request queued meanwhile. So a second thread per
writer, the keeper, seals the segments the writer hands it and keeps the next one ready
(created, its directory entry flushed); the writer only swaps file descriptors between
groups. A ready segment is used only within ``2 × max_age`` of its creation and in the
same UTC hour (its name's time and folder stay those of its data); otherwise the writer
opens one itself, as before. Names carry
``<collector id>.<boot>.<sequence>`` (see :mod:`advertisex.collector.segments`) so
collectors can share a landing zone, and a restarted collector recognises and seals the
unsealed files of its previous life.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from advertisex.errors import StorageError
from advertisex.landing.zone import LandingZone
from advertisex.util.storage import fsync_path as _fsync_dir  # the name tests patch
from advertisex.util.timeutil import utcnow

log = logging.getLogger("advertisex.collector")

Sealed = Callable[[str, int], None]  # (segment name, bytes)
_LATE = 0.05  # a group's wake-up this late: the next request wakes the thread itself
Observe = Callable[[str, float, int], None]  # (source, fsync seconds, requests in the group)


# One request's bytes, the future it awaits and that future's loop: a plain tuple, made
# once per pixel and click (a dataclass instance cost several times more).
_Pending = tuple[bytes, "asyncio.Future[None]", asyncio.AbstractEventLoop]
_Paths = tuple[str, Path, Path]  # (name, final path, temporary path)
_Spare = tuple[int, _Paths, datetime]  # a ready segment: its fd, paths and creation time
_Job = tuple[int, _Paths, int] | None  # for the keeper: a segment to seal, or make a spare
_STOP = (-1, ("", Path(), Path()), 0)


class SegmentWriter:
    """Appends requests to the current open segment of one source, one fsync per group."""

    def __init__(
        self,
        zone: LandingZone,
        source: str,
        fmt: str,
        label: Callable[[], str],
        *,
        max_bytes: int,
        max_age: float,
        fsync: bool = True,
        on_sealed: Sealed | None = None,
        observe: Observe | None = None,
        commit_interval: float = 0.0,
    ) -> None:
        self.zone, self.source, self.fmt = zone, source, fmt
        self._interval, self._last_commit = commit_interval, -commit_interval
        self._label, self._max_bytes, self._max_age, self._fsync = label, max_bytes, max_age, fsync
        self._on_sealed, self._observe = on_sealed, observe
        self._lock = threading.Lock()  # taken bare on the event loop: cheaper than the Condition
        self._cond = threading.Condition(self._lock)
        self._queue: list[_Pending] = []
        self._wake_at: float | None = None  # when the event loop will wake the thread for a group
        self._closing = False
        self.pending_bytes = 0
        self._thread = threading.Thread(
            target=self._run, name=f"writer-{source}-{fmt}", daemon=True
        )
        # The open segment, touched only by the writer thread.
        self._fd: int | None = None
        self._paths: _Paths | None = None
        self._size = 0
        self._opened = 0.0
        self._dir_synced = False
        # The keeper: seals handed-off segments and keeps the next one ready (off the path).
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._spare: _Spare | None = None  # under self._lock
        self._keeper = threading.Thread(
            target=self._keep, name=f"keeper-{source}-{fmt}", daemon=True
        )

    def start(self) -> None:
        self._keeper.start()
        self._thread.start()

    async def append(self, data: bytes) -> None:
        """Return once ``data`` is on disk (fsync'd); raise :class:`StorageError` otherwise."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._closing:
                raise StorageError("the collector is shutting down")
            self._queue.append((data, future, loop))
            self.pending_bytes += len(data)
            if len(self._queue) == 1:  # a new group: the thread is waiting, or busy flushing
                hold = self._last_commit + self._interval - time.monotonic()
                if hold > 0:  # woken once, when the group is due, by the loop's own timer
                    self._wake_at = time.monotonic() + hold
                    loop.call_later(hold, self._wake)
                else:
                    self._cond.notify()
            elif self._wake_at is not None and time.monotonic() > self._wake_at + _LATE:
                self._wake_at = None  # the loop that was to wake the thread is gone (closed)
                self._cond.notify()
        # A client hang-up cancels only this wait: the bytes stay queued and are written.
        await future

    def _wake(self) -> None:
        with self._cond:
            self._wake_at = None
            self._cond.notify()

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, fsync, seal the open segment and stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    wait = self._seal_in()
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                closing, waiting = self._closing, bool(self._queue)
            hold = self._last_commit + self._interval - time.monotonic()
            if waiting and hold > 0 and not closing:
                time.sleep(hold)  # what arrives meanwhile joins this group
            with self._cond:
                batch, self._queue = self._queue, []
                closing = self._closing
            if batch:
                self._last_commit = time.monotonic()
                self._commit(batch)
                with self._cond:
                    self.pending_bytes -= sum(len(data) for data, _, _ in batch)
            if self._fd is not None and closing:
                self._seal()
            elif self._fd is not None and (
                self._size >= self._max_bytes or (self._seal_in() or 0) <= 0
            ):
                self._hand_off()
            if closing and not batch:
                self._jobs.put(_STOP)
                self._keeper.join()
                return

    def _seal_in(self) -> float | None:
        """Seconds until the open segment is due for sealing by age; None without one."""
        if self._fd is None:
            return None
        return self._opened + self._max_age - time.monotonic()

    def _commit(self, batch: list[_Pending]) -> None:
        error: BaseException | None = None
        started = time.perf_counter()
        try:
            if self._fd is None:
                self._open()
            assert self._fd is not None and self._paths is not None
            directory = self._paths[2].parent
            data = b"".join([data for data, _, _ in batch])
            start = self._size
            try:
                _write_all(self._fd, data)
                if self._fsync:
                    os.fdatasync(self._fd)
                    if not self._dir_synced:  # the new file's name must survive a power cut too
                        _fsync_dir(directory)
                        self._dir_synced = True
                if os.fstat(self._fd).st_nlink == 0:  # deleted under us: durable in no file
                    self._fd, self._paths = self._rescued(self._fd, self._paths, start + len(data))
                    self._dir_synced = True
                self._size += len(data)
            except OSError as e:
                error = StorageError(f"cannot write segment: {e.strerror or e}")
                self._undo(start)
        except OSError as e:  # opening the segment failed (disk full, permissions)
            error = StorageError(f"cannot open a segment: {e.strerror or e}")
        if self._observe and error is None:
            self._observe(self.source, time.perf_counter() - started, len(batch))
        _settle(batch, error)

    def _open(self) -> None:
        spare = self._take_spare()
        if spare is None:
            self._fd, self._paths = self._create()
            self._dir_synced = False
        else:  # made by the keeper, its name already durable
            self._fd, self._paths, _ = spare
            self._dir_synced = True
        self._size, self._opened = 0, time.monotonic()
        self._jobs.put(None)  # the keeper makes the next one ready

    def _create(self, at: datetime | None = None) -> tuple[int, _Paths]:
        paths = self.zone.new_segment_path(
            self.source, fmt=self.fmt, label=self._label(), at=at, fsync=self._fsync
        )
        # O_APPEND: after a failed group is truncated away, the next write lands at the new end.
        # Readable: a segment deleted under the writer is read back from it (_rescued).
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        return os.open(paths[2], flags, 0o644), paths

    def _take_spare(self) -> _Spare | None:
        """The keeper's ready segment if it is fresh: made within ``2 × max_age`` and in
        this UTC hour (its name's time and folder stay close to its data's arrival)."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None:
            return None
        now = utcnow()
        made = spare[2]
        if now - made < timedelta(seconds=2 * self._max_age) and (
            (made.date(), made.hour) == (now.date(), now.hour)
        ):
            return spare
        self._jobs.put((spare[0], spare[1], 0))  # stale: the keeper removes it
        return None

    def _hand_off(self) -> None:
        """Give the open segment to the keeper to seal; the next group takes a new one."""
        assert self._fd is not None and self._paths is not None
        self._jobs.put((self._fd, self._paths, self._size))
        self._fd, self._paths = None, None

    # ------------------------------------------------------------------ keeper thread
    def _keep(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                break
            if job is None:
                self._make_spare()
            else:
                self._seal_segment(*job)
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            self._seal_segment(spare[0], spare[1], 0)  # empty: removed

    def _make_spare(self) -> None:
        with self._lock:
            if self._spare is not None or self._closing:
                return
        at = utcnow()
        made: tuple[int, _Paths] | None = None
        try:
            made = self._create(at)
            if self._fsync:
                _fsync_dir(made[1][2].parent)
        except OSError:
            log.warning("cannot make the next %s segment ready; the writer opens it", self.source)
            if made is not None:  # its name is not durable: closed and removed, not kept
                self._seal_segment(*made, 0)
            return
        fd, paths = made
        with self._lock:
            self._spare = (fd, paths, at)

    def _undo(self, start: int) -> None:
        """Cut a failed group's partial bytes off, so the segment holds only acknowledged data."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, start)
            os.fsync(self._fd)
        except OSError:
            # Cannot trust the file's tail any more: publish it as it is (what was
            # acknowledged must not be lost; a torn tail line is quarantined downstream).
            log.exception("cannot truncate %s after a failed write; sealing it", self._paths)
            self._seal()

    def _seal(self) -> None:
        assert self._fd is not None and self._paths is not None
        fd, paths, size = self._fd, self._paths, self._size
        self._fd, self._paths = None, None
        self._seal_segment(fd, paths, size)

    def _seal_segment(self, fd: int, paths: _Paths, size: int) -> None:
        """Rename into view, fsync the folder and close; an empty segment is removed."""
        try:
            if size:
                try:
                    self.zone.seal(paths[2], paths[1], fsync=self._fsync)
                except FileNotFoundError:
                    if os.fstat(fd).st_nlink:
                        raise
                    fd, paths = self._rescued(fd, paths, size)  # its folder was deleted
                    self.zone.seal(paths[2], paths[1], fsync=self._fsync)
            else:
                paths[2].unlink(missing_ok=True)
        except OSError:
            log.exception("cannot seal %s; it is recovered at the next start", paths[2])
            return
        finally:
            os.close(fd)
        if size and self._on_sealed:
            self._on_sealed(paths[0], size)

    def _rescued(self, fd: int, paths: _Paths, size: int) -> tuple[int, _Paths]:
        """The first ``size`` bytes of a segment deleted under the writer (an operator
        removed its folder), which ``fd`` still holds, written and flushed to a new segment
        (its folder made again); ``fd`` is closed. Acknowledged bytes in a file without a
        name were lost at its seal, or at a crash."""
        made, new = self._create()
        try:
            offset = 0
            while offset < size:
                piece = os.pread(fd, min(size - offset, 1 << 20), offset)
                if not piece:
                    raise OSError(f"{paths[2]} ends at byte {offset} of {size}")
                _write_all(made, piece)
                offset += len(piece)
            if self._fsync:
                os.fdatasync(made)
                _fsync_dir(new[2].parent)
        except OSError:
            os.close(made)
            new[2].unlink(missing_ok=True)
            raise
        log.warning(
            "%s was deleted while open (its folder removed?); its %d bytes are in %s",
            paths[2],
            size,
            new[2],
        )
        os.close(fd)
        return made, new


class FilePerRequestWriter(SegmentWriter):
    """Each request becomes its own sealed segment (Avro containers cannot be appended).

    The group still shares work: every file of the group is written and flushed, then the
    renames are made durable by one directory fsync.
    """

    def _commit(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        made: list[tuple[str, Path, Path, int]] = []
        error: BaseException | None = None
        try:
            for body, _, _ in batch:
                name, final, temporary = self.zone.new_segment_path(
                    self.source, fmt=self.fmt, label=self._label(), fsync=self._fsync
                )
                # Listed before the first byte: a write that fails (disk full) is cleaned up too.
                made.append((name, final, temporary, len(body)))
                with open(temporary, "xb") as handle:
                    handle.write(body)
                    handle.flush()
                    if self._fsync:
                        os.fdatasync(handle.fileno())
            for _, final, temporary, _ in made:
                os.replace(temporary, final)
            if self._fsync:
                for directory in {final.parent for _, final, _, _ in made}:
                    _fsync_dir(directory)
        except OSError as e:
            error = StorageError(f"cannot write segment: {e.strerror or e}")
            for _, final, temporary, _ in made:  # none of the group was acknowledged
                temporary.unlink(missing_ok=True)
                final.unlink(missing_ok=True)
            made = []
        if error is None:
            if self._observe:
                self._observe(self.source, time.perf_counter() - started, len(batch))
            for name, _, _, size in made:
                if self._on_sealed:
                    self._on_sealed(name, size)
        _settle(batch, error)


def _settle(batch: list[_Pending], error: BaseException | None) -> None:
    """Resolve the group's futures on their event loop (the only thread allowed to)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for _, future, loop in batch:
        by_loop.setdefault(loop, []).append(future)
    for loop, futures in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, futures, error)
        except RuntimeError:  # the loop is gone (shutdown): nobody is waiting any more
            pass


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
