"""Where a paced pixel's or click's time goes, request by request: the client's and the collector's
timelines side by side, with the event loop's blocked stretches, GC pauses, segment seals
and metrics flushes beside them.

Starts ``advertisex serve`` (fsync on, ``--workers``) with instruments patched in (this
file, run with ``--serve``: nothing in the collector's code changes), loads the pixel (or,
``--endpoint click``, the signed click link) at ``--rate`` with bench/wire_paced.lua
logging every answer, stops the server (each worker writes its trace) and matches each
answer to its server-side timeline by its number: the counter its impression id ends
with, or a click's ``X-Bench-Seq`` header. All times are CLOCK_MONOTONIC, the client's and the server's.

A request's time, in order:

* ``send lag``   — wrk wrote it after its intended time (its connection was busy, or wrk
  did not get the CPU);
* ``to server``  — written by wrk → the server's ``data_received`` (the kernel, and the
  event loop busy with something else);
* ``parse``      — ``data_received`` → headers parsed;
* ``endpoint``   — headers → the record handed to the writer;
* ``queue``      — handed → its group taken by the writer thread (the group interval, a
  flush or a seal in progress, the thread waiting for the GIL);
* ``write``      — the group's ``write`` (and opening a segment when one is due);
* ``fsync``      — the group's ``fdatasync`` (and a new segment's directory fsync);
* ``settle``     — flushed → the futures handed to the event loop;
* ``to loop``    — handed → resolved on the event loop;
* ``answer``     — resolved → the GIF written to the socket;
* ``to client``  — written → wrk read the answer.

Also measured in the same run, before the load: the disk's own ``fdatasync`` floor
(bench/fsync_floor.py, one every 2 ms for ``--floor-seconds``).

    python bench/wire_stalls.py [--rate 2000] [--seconds 20] [--workers 2] [--slowest 12]
                                [--endpoint pixel|click] [--after-sequence]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from _args import positive, positive_seconds

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
TRACE_ENV = "ADX_WIRE_TRACE"
PHASES = (
    "send lag", "to server", "parse", "endpoint", "queue", "write", "fsync", "settle",
    "to loop", "answer", "to client",
)  # fmt: skip


# ---------------------------------------------------------------------------- the server
def install(directory: Path) -> None:
    """Patch the collector's pieces to stamp every request's way through them, in this
    process and the workers it forks; each worker writes its trace when it stops."""
    import asyncio
    import gc
    import threading

    from advertisex.collector import app as app_module
    from advertisex.collector import capacity as capacity_module
    from advertisex.collector import writer as writer_module
    from advertisex.collector.metrics import CollectorMetrics
    from advertisex.collector.service import Collector
    from advertisex.collector.tracking import protocol as protocol_module
    from advertisex.collector.tracking.service import TrackingMetrics
    from advertisex.collector.writer import SegmentWriter
    from advertisex.util import jsonutil

    perf = time.perf_counter
    requests: list[tuple[Any, ...]] = []  # rx, headers, handed, group, resolved, written, query
    # source, requests, taken, written, synced, dir synced, settled (a tuple once settled)
    groups: list[Any] = []
    events: dict[str, list[tuple[Any, ...]]] = {
        "seal": [], "open": [], "gc": [], "lag": [], "flush": [], "capacity": [], "metrics": [],
    }  # fmt: skip
    by_answer: dict[int, list[Any]] = {}
    by_data: dict[int, list[Any]] = {}
    by_future: dict[int, list[Any]] = {}
    current: list[Any] = [None]
    local = threading.local()

    protocol_class, answered_class = protocol_module.AnsweringProtocol, protocol_module.Answered
    received, made, started, wrote = (
        protocol_class.data_received, answered_class.__init__, answered_class.start,
        answered_class.write,
    )  # fmt: skip

    def data_received(self: Any, data: bytes) -> None:
        self._adx_rx = perf()
        received(self, data)

    def answered_init(self: Any, protocol: Any, path: str, hit: Any, *rest: Any) -> None:
        made(self, protocol, path, hit, *rest)
        by_answer[id(self)] = [protocol._adx_rx, perf(), 0.0, -1, 0.0, 0.0, _sequence(hit)]

    def start(self: Any) -> None:
        current[0] = by_answer.get(id(self))
        try:
            started(self)
        finally:
            current[0] = None

    def write(self: Any, data: bytes) -> None:
        record = by_answer.pop(id(self), None)
        if record is not None:
            record[5] = perf()
            requests.append(tuple(record))  # see traced_commit: kept out of the GC's walks
        wrote(self, data)

    protocol_class.data_received = data_received  # type: ignore[method-assign]
    answered_class.__init__ = answered_init  # type: ignore[method-assign,assignment]
    answered_class.start = start  # type: ignore[method-assign]
    answered_class.write = write  # type: ignore[method-assign]

    append, commit, seal, open_ = (
        SegmentWriter.append,
        SegmentWriter._commit,
        SegmentWriter._seal,
        SegmentWriter._open,
    )
    write_all, fsync_dir, settle, resolve = (
        writer_module._write_all, writer_module._fsync_dir, writer_module._settle,
        writer_module._resolve,
    )  # fmt: skip
    fdatasync = os.fdatasync

    def traced_append(self: Any, data: bytes) -> Any:
        record = current[0]
        if record is not None:
            record[2] = perf()
            by_data[id(data)] = record
        return append(self, data)

    def traced_commit(self: Any, batch: list[Any]) -> None:
        group = [self.source, len(batch), perf(), 0.0, 0.0, 0.0, 0.0]
        number = len(groups)
        groups.append(group)
        for data, future, _ in batch:
            record = by_data.pop(id(data), None)
            if record is not None:
                record[3] = number
                by_future[id(future)] = record
        local.group = group
        try:
            commit(self, batch)
        finally:
            local.group = None
            # Finished records are kept as tuples of numbers, which the garbage collector
            # stops tracking: lists would pile up in the old generation (hundreds of
            # thousands in a long run) and make its full passes — ~90 ms stalls of the
            # event loop seen in a 40 s trace — the instrument's own.
            groups[number] = tuple(group)

    def stamp(index: int) -> None:
        group = getattr(local, "group", None)
        if group is not None:
            group[index] = perf()

    def traced_write_all(fd: int, data: bytes) -> None:
        write_all(fd, data)
        stamp(3)

    def traced_fdatasync(fd: int) -> None:
        fdatasync(fd)
        stamp(4)

    def traced_fsync_dir(directory: Path) -> None:
        fsync_dir(directory)
        stamp(5)

    def traced_settle(batch: list[Any], error: BaseException | None) -> None:
        stamp(6)
        settle(batch, error)

    def traced_resolve(futures: list[Any], error: BaseException | None) -> None:
        now = perf()
        for future in futures:
            record = by_future.pop(id(future), None)
            if record is not None:
                record[4] = now
        resolve(futures, error)

    def timed(kind: str, function: Any) -> Any:
        def run(self: Any, *args: Any) -> Any:
            begun = perf()
            try:
                return function(self, *args)
            finally:
                events[kind].append((getattr(self, "source", ""), begun, perf()))

        return run

    SegmentWriter.append = traced_append  # type: ignore[method-assign]
    SegmentWriter._commit = traced_commit  # type: ignore[method-assign]
    if hasattr(SegmentWriter, "_seal_segment"):  # sealed by the keeper thread
        SegmentWriter._seal_segment = timed("seal", SegmentWriter._seal_segment)  # type: ignore[method-assign]
    else:  # sealed by the writer thread, between groups
        SegmentWriter._seal = timed("seal", seal)  # type: ignore[method-assign]
    SegmentWriter._open = timed("open", open_)  # type: ignore[method-assign]
    writer_module._write_all = traced_write_all
    writer_module._fsync_dir = traced_fsync_dir
    writer_module._settle = traced_settle
    writer_module._resolve = traced_resolve
    os.fdatasync = traced_fdatasync  # type: ignore[assignment]
    TrackingMetrics.flush = timed("flush", TrackingMetrics.flush)  # type: ignore[method-assign]
    # a worker's metrics are memory-mapped files: a write can fault (page_mkwrite)
    for name in ("observe_commit", "observe_sealed", "set_pending"):
        setattr(CollectorMetrics, name, timed("metrics", getattr(CollectorMetrics, name)))
    shared = capacity_module.SharedOutstanding
    for name in ("add", "total", "drop", "oldest"):
        setattr(shared, name, timed("capacity", getattr(shared, name)))

    gc_started: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = perf()
        else:
            events["gc"].append((info["generation"], gc_started[0], perf(), info["collected"]))

    gc.callbacks.append(on_gc)

    async def lag_probe() -> None:
        """The event loop's blocked stretches: a 1 ms timer's lateness over 2 ms, as
        ``lag busy`` when the loop's thread ran (CPU time) most of that stretch — our
        own work on the loop — else ``lag idle`` (waiting for the GIL or for a core)."""
        while True:
            begun, cpu = perf(), time.thread_time()
            await asyncio.sleep(0.001)
            late = perf() - begun - 0.001
            if late > 0.002:
                ran = time.thread_time() - cpu
                kind = "busy" if ran > 0.5 * late else "idle"
                events["lag"].append((kind, begun + 0.001, begun + 0.001 + late))

    flush_every = app_module._flush_every

    async def traced_flush_every(tracking: Any, seconds: float) -> None:
        probe = asyncio.get_running_loop().create_task(lag_probe())
        try:
            await flush_every(tracking, seconds)
        finally:
            probe.cancel()

    app_module._flush_every = traced_flush_every

    stop = Collector.stop

    def traced_stop(self: Any) -> None:
        stop(self)
        trace = {
            "pid": os.getpid(),
            "requests": requests,
            "groups": groups,
            "events": events,
        }
        (directory / f"trace-{os.getpid()}.json").write_bytes(jsonutil.dumps(trace))

    Collector.stop = traced_stop  # type: ignore[method-assign]


def _sequence(hit: Any) -> int:
    """A paced request's number: what its unique impression id ends with (a pixel), else its
    ``X-Bench-Seq`` header (a click: its signed link cannot carry it); -1 for neither."""
    tail = hit.query.rsplit(b"-", 1)[-1]
    if tail.isdigit():
        return int(tail)
    for name, value in hit.headers:
        if name == b"x-bench-seq" and value.isdigit():
            return int(value)
    return -1


def serve_traced(argv: list[str]) -> None:
    install(Path(os.environ[TRACE_ENV]))
    from advertisex.cli.app import main

    sys.argv = ["advertisex", *argv]
    main()


# ---------------------------------------------------------------------------- the analysis
def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


def load(traces: Path, client_log: Path) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """Each answered request's phases (ms) matched to the server's timeline, and the events."""
    from advertisex.util import jsonutil

    lines = client_log.read_text().splitlines()
    # the run's first intended send (µs): requests of the load before it (--after-sequence)
    # may carry the same numbers, and are left out by their arrival time
    first = min((float(line.split()[1]) for line in lines), default=0.0) / 1e6 - 1.0
    server: dict[int, tuple[list[Any], list[Any]]] = {}
    events: dict[str, list[tuple[Any, ...]]] = {}
    for path in sorted(traces.glob("trace-*.json")):
        trace = jsonutil.loads(path.read_bytes())
        groups = trace["groups"]
        for record in trace["requests"]:
            if record[3] >= 0 and record[6] >= 0 and record[0] >= first:
                server[record[6]] = (record, groups[record[3]])
        for kind, found in trace["events"].items():
            events.setdefault(kind, []).extend((trace["pid"], *event) for event in found)
    rows = []
    for line in lines:
        counter, intended, sent, done = (int(float(x)) for x in line.split())
        match = server.get(counter)
        if match is None:
            continue
        (rx, headers, handed, _, resolved, written, _), group = match
        _, size, taken, wrote, synced, dir_synced, settled = group
        us = 1e6  # server stamps are seconds, the client's µs
        flushed = dir_synced or synced
        phases = {
            "send lag": max(0.0, sent - intended),
            "to server": rx * us - sent,
            "parse": (headers - rx) * us,
            "endpoint": (handed - headers) * us,
            "queue": (taken - handed) * us,
            "write": (wrote - taken) * us,
            "fsync": (flushed - wrote) * us,
            "settle": (settled - flushed) * us,
            "to loop": (resolved - settled) * us,
            "answer": (written - resolved) * us,
            "to client": done - written * us,
        }
        row = {name: value / 1000 for name, value in phases.items()}  # ms
        row["total"] = (done - min(intended, sent)) / 1000
        row["at"] = min(intended, sent) / 1e6
        row["end"] = done / 1e6
        row["group"] = size
        rows.append(row)
    return rows, events


def overlapping(events: dict[str, list[tuple[Any, ...]]], start: float, end: float) -> str:
    """The seals, GC pauses, loop stalls and flushes that overlap [start, end] (seconds)."""
    found: list[tuple[float, str]] = []
    for kind, items in events.items():
        for item in items:
            if kind == "gc":
                pid, generation, begun, ended, _ = item
                label = f"gc{generation}"
            else:
                pid, source, begun, ended = item
                label = f"{kind} {source}".strip()
            if begun <= end and ended >= start and (ended - begun) > 0.0005:
                found.append(
                    (ended - begun, f"{label} {(ended - begun) * 1000:.1f} ms (pid {pid})")
                )
    found.sort(reverse=True)
    return "; ".join(text for _, text in found[:6]) or "—"


def report(
    rows: list[dict[str, float]], events: dict[str, list[tuple[Any, ...]]], slowest: int
) -> None:
    if not rows:
        print("no answer matched the server's trace")
        return
    totals = [row["total"] for row in rows]
    print(f"\n{len(rows):,} answers matched; client latency p50 {percentile(totals, 0.5):.2f} ms, "
          f"p99 {percentile(totals, 0.99):.2f} ms, max {max(totals):.1f} ms")  # fmt: skip
    print("\nphase        p50 ms   p99 ms   max ms   share of the time of answers over 5 ms")
    slow = [row for row in rows if row["total"] > 5]
    slow_time = sum(row["total"] for row in slow) or 1.0
    for name in PHASES:
        values = [row[name] for row in rows]
        share = sum(row[name] for row in slow) / slow_time
        print(
            f"{name:<12} {percentile(values, 0.5):7.2f}  {percentile(values, 0.99):7.2f}  "
            f"{max(values):7.1f}   {share:5.1%}"
        )
    dominant: dict[str, int] = {}
    for row in slow:
        name = max(PHASES, key=lambda phase: row[phase])
        dominant[name] = dominant.get(name, 0) + 1
    print(f"\n{len(slow):,} answers over 5 ms ({len(slow) / len(rows):.2%}); their largest phase: "
          + ", ".join(f"{name} {count:,}" for name, count in
                      sorted(dominant.items(), key=lambda item: -item[1])))  # fmt: skip
    print(
        f"\nthe {slowest} slowest (ms: "
        + " / ".join(PHASES)
        + "), group size, and what overlapped:"
    )
    for row in sorted(rows, key=lambda row: -row["total"])[:slowest]:
        phases = " / ".join(f"{row[name]:.1f}" for name in PHASES)
        print(f"  {row['total']:7.1f}  [{phases}]  group {row['group']}  "
              f"{overlapping(events, row['at'], row['end'])}")  # fmt: skip
    start, end = min(row["at"] for row in rows), max(row["end"] for row in rows)
    print("\nin the loaded window, per kind: count, p50 / p99 / max ms")
    for kind, items in sorted(events.items()):
        inside = [item for item in items if start <= item[-2 if kind != "gc" else 2] <= end]
        if kind == "gc":
            for generation in (0, 1, 2):
                durations = [(i[3] - i[2]) * 1000 for i in inside if i[1] == generation]
                _describe(f"gc{generation}", durations)
        elif kind == "lag":
            for which in ("busy", "idle"):
                _describe(f"lag {which}", [(i[3] - i[2]) * 1000 for i in inside if i[1] == which])
        else:
            _describe(kind, [(i[3] - i[2]) * 1000 for i in inside])


def _describe(label: str, durations: Iterable[float]) -> None:
    values = list(durations)
    if values:
        print(f"  {label:<9} {len(values):6,}  {percentile(values, 0.5):.2f} / "
              f"{percentile(values, 0.99):.2f} / {max(values):.1f}")  # fmt: skip


def groups_report(traces: Path) -> None:
    """The writer's own flush times (server side): the disk as the collector met it."""
    from advertisex.util import jsonutil

    fsyncs, sizes = [], []
    for path in traces.glob("trace-*.json"):
        for group in jsonutil.loads(path.read_bytes())["groups"]:
            if group[4]:
                fsyncs.append(((group[5] or group[4]) - group[3]) * 1000)
                sizes.append(group[1])
    if fsyncs:
        print(f"\nthe writers' {len(fsyncs):,} group flushes: fdatasync p50 "
              f"{percentile(fsyncs, 0.5):.2f} ms, p99 {percentile(fsyncs, 0.99):.2f}, max "
              f"{max(fsyncs):.1f}; requests a group p50 {percentile(sizes, 0.5):.0f}, max "
              f"{max(sizes)}")  # fmt: skip


def before(url: str, endpoint: str, rate: int, connections: int) -> None:
    """The load bench/wire.py puts on a server before ``endpoint`` at ``rate``."""
    import wire

    pixel, _ = wire.paths()["pixel"]
    wire.flat_out(url, pixel + "seq-warm-", True, 2, None)
    rates = [2000, 4000, 6000, 8000, 10_000]
    for offered in rates if endpoint == "click" else [r for r in rates if r < rate]:
        wire.paced(url, f"{pixel}seq-{offered}-", True, 5, offered, connections, None)
    if endpoint == "click":
        wire.flat_out(url, pixel + "seq-max-", True, 5, None)
        click, _ = wire.paths()["click"]
        wire.flat_out(url, click, False, 2, None)
        for offered in (r for r in rates if r < rate):
            wire.paced(url, click, False, 5, offered, connections, None)
    print(f"after bench/wire.py's sequence before this run; load {os.getloadavg()[0]:.2f}")


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve_traced(sys.argv[2:])
        return
    import wire
    from fsync_floor import describe, probe, summary

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=positive, default=2000)
    parser.add_argument("--seconds", type=positive_seconds, default=20.0)
    parser.add_argument("--workers", type=positive, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--connections", type=positive, default=50)
    parser.add_argument("--slowest", type=positive, default=12)
    parser.add_argument("--floor-seconds", type=positive_seconds, default=10.0)
    parser.add_argument("--endpoint", choices=("pixel", "click"), default="pixel")
    parser.add_argument(
        "--after-sequence", action="store_true",
        help="first what bench/wire.py runs on the same server before this run: the pixel "
        "paced at 2-10 k/s and flat out, then this endpoint's lower rates (5 s each)",
    )  # fmt: skip
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="adx-stalls-") as work:
        root = Path(work)
        print(f"load average {os.getloadavg()[0]:.2f}")
        if args.floor_seconds:
            floor = summary(probe(root, args.floor_seconds))
            print("disk alone, one fdatasync every 2 ms: " + describe(floor), flush=True)
        traces = root / "traces"
        traces.mkdir()
        os.environ[TRACE_ENV] = str(traces)
        serve = [sys.executable, str(Path(__file__).resolve()), "--serve", "serve"]
        process, url = wire.start_collector(root / "data", True, args.workers, None, serve)
        log = root / "client.log"
        try:
            if args.after_sequence:
                before(url, args.endpoint, args.rate, args.connections)
            path, unique = wire.paths()[args.endpoint]
            wire.flat_out(url, path + "warm-" if unique else path, unique, 2, None)
            result = wire.paced(
                url, path + "1-" if unique else path, unique, args.seconds, args.rate,
                args.connections, None, log,
            )  # fmt: skip
        finally:
            wire.stop(process)
        print(f"paced {args.endpoint} at {args.rate:,}/s, {args.workers} worker(s): answered "
              f"{result['requests'] / (result['window_us'] / 1e6):,.0f}/s, p99 "
              f"{result['p99'] / 1000:.2f} ms, p99.9 {result['p999'] / 1000:.2f} ms, "
              f"max {result['max'] / 1000:.1f} ms; load {os.getloadavg()[0]:.2f}")  # fmt: skip
        rows, events = load(traces, log)
        report(rows, events, args.slowest)
        groups_report(traces)


if __name__ == "__main__":
    main()
