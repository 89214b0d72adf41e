"""The disk's own ``fdatasync`` latency, paced as the collector's group commit uses it.

A durable answer waits for the ``fdatasync`` of its group (and at worst for the one in
progress before it), so whatever the server does, its p99 cannot be below the disk's
``fdatasync`` p99. This measures that floor without any HTTP: a loop of small appends to
one file, each followed by ``fdatasync``, one every ``--interval`` (the collector's
``group_commit_seconds``, 2 ms), for ``--seconds``; it prints the latency distribution.

``--mode overwrite`` writes the same sequence into a file already written (zeros) and
flushed beforehand (no size change, no block allocation), to tell apart the device's
own flush from the filesystem's journal commit that an append's new size needs (ext4:
a ``fdatasync`` that must make a new size durable commits the journal, and the journal
commit waits for everyone's ordered data — another process's writeback too).
``--busy MIB`` runs a second process beside the probe that writes a big file through the
page cache, without fsync, at most MIB MiB a second (0 = as fast as it can) — the kernel
writing it back is what a soak or an ingest leaves behind.

    python bench/fsync_floor.py [--seconds 60] [--interval 0.002] [--bytes 300]
                                [--mode append|overwrite] [--busy MIB] [--dir DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _args import at_least_zero, positive, positive_seconds

MIB = 1 << 20


def probe(
    directory: Path,
    seconds: float,
    interval: float = 0.002,
    size: int = 300,
    mode: str = "append",
) -> list[float]:
    """The ``fdatasync`` times (seconds) of ``size``-byte writes, one every ``interval``."""
    path = directory / f".fsync-floor-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    payload = b"x" * (size - 1) + b"\n"
    times: list[float] = []
    try:
        if mode == "overwrite":  # every byte the loop will touch already written and flushed
            rounds = int(seconds / interval) + 1
            for start in range(0, rounds * size, 1 << 20):
                os.write(fd, bytes(min(1 << 20, rounds * size - start)))
            os.fsync(fd)
        else:
            os.lseek(fd, 0, os.SEEK_END)
        due = time.monotonic()
        end = due + seconds
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now < due:
                time.sleep(due - now)
            if mode == "overwrite":
                os.pwrite(fd, payload, len(times) * size)
            else:
                os.write(fd, payload)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
            due = max(due + interval, time.monotonic())  # late: the next goes at once
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return times


def summary(times: list[float]) -> dict[str, Any]:
    """Percentiles (ms), the worst and how many took over 5 / 10 / 50 ms."""
    ordered = sorted(times)
    count = len(ordered)

    def at(p: float) -> float:
        return ordered[min(count - 1, int(count * p))] * 1000 if count else 0.0

    return {
        "count": count,
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": ordered[-1] * 1000 if count else 0.0,
        "over_5ms": sum(t > 0.005 for t in ordered),
        "over_10ms": sum(t > 0.010 for t in ordered),
        "over_50ms": sum(t > 0.050 for t in ordered),
    }


def describe(s: dict[str, Any]) -> str:
    return (
        f"{s['count']:,} fdatasyncs: p50 {s['p50']:.2f} ms, p90 {s['p90']:.2f}, "
        f"p99 {s['p99']:.2f}, p99.9 {s['p999']:.2f}, max {s['max']:.1f} ms; "
        f"over 5 ms {s['over_5ms']:,}, over 10 ms {s['over_10ms']:,}, over 50 ms {s['over_50ms']:,}"
    )


def _busy(directory: str, mib_per_second: float, stop: Any) -> None:
    """Write a big file through the page cache until ``stop`` is set (rewritten in a loop
    of 1 GiB so the disk does not fill), never fsync'd: the kernel writes it back."""
    path = Path(directory) / f".fsync-floor-busy-{os.getpid()}"
    chunk = os.urandom(MIB)
    written = 0
    started = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while not stop.is_set():
            if written >= 1024:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                written, started = 0, time.monotonic()
            os.write(fd, chunk)
            written += 1
            if mib_per_second:
                ahead = written / mib_per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


class Busy:
    """A second process writing a big file beside the probe (``with Busy(dir, 50): …``)."""

    def __init__(self, directory: Path, mib_per_second: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.process = context.Process(
            target=_busy, args=(str(directory), mib_per_second, self.stop), daemon=True
        )

    def __enter__(self) -> Busy:
        self.process.start()
        time.sleep(1.0)  # dirty pages to write back before the probe starts
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.process.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=positive_seconds, default=60.0)
    parser.add_argument("--interval", type=positive_seconds, default=0.002)
    parser.add_argument("--bytes", type=positive, default=300)
    parser.add_argument("--mode", choices=("append", "overwrite"), default="append")
    parser.add_argument(
        "--busy", type=at_least_zero, default=None, metavar="MIB", help="MiB/s, 0 = flat out"
    )
    parser.add_argument("--dir", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adx-fsync-", dir=args.dir) as work:
        root = Path(work)
        print(f"load average {os.getloadavg()[0]:.2f}; {args.mode}, {args.bytes} bytes "
              f"every {args.interval * 1000:g} ms for {args.seconds:g} s"
              + (f", beside a writer at {args.busy or 'full'} MiB/s" if args.busy is not None
                 else ", alone"), flush=True)  # fmt: skip
        if args.busy is None:
            times = probe(root, args.seconds, args.interval, args.bytes, args.mode)
        else:
            with Busy(root, args.busy):
                times = probe(root, args.seconds, args.interval, args.bytes, args.mode)
        print(describe(summary(times)))
        print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
