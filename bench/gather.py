"""Bench: the monitor's gatherer over landing hours that hold what 10 k events/s lands.

    .venv/bin/python bench/gather.py                     # 40,000 segments per hour
    .venv/bin/python bench/gather.py --segments 4000 --batch-files 300

At 10 k events/s ``generate --to`` lands ≈ 11 segments a second (impressions and clicks
in one-second segments, bids one Avro file per request): ≈ 40,000 in an hour. This
writes ``--segments`` of them (split over the three sources) into the previous and the
current landing hour, marks all but the last seconds' committed in the ledger, and
commits ``--batch-files`` small ``ops.batches`` files (the follower adds one per batch;
maintenance compacts them every 10 minutes). Then it times, in process, at a fixed
moment 50 minutes into the current hour (so every run sees the same amounts):

- a **full read** — a fresh gatherer's first observation (every segment listed, every
  mark read), in a process that has observed once already (imports paid): what each
  observation cost before hours were followed incrementally;
- an **incremental observation** after ``--new`` more segments landed and the previous
  pending ones were committed (30 s of 10 k events/s: the console's refresh interval);
- an incremental observation with nothing new;
- ``advertisex status --format json`` as a command, twice (the second finds the final
  hours in the monitor's state store), with its CPU time. It runs on the real clock
  (the minute of the hour is printed): before minute 50 it also sees segments from
  "later" in the hour, and the previous hour may not be final yet.

Reports wall and CPU time (a shared machine inflates wall time) and the load average.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from _args import positive

SOURCES = ("impressions", "clicks", "bids")


def land(ax: object, start: object, span: timedelta, count: int, offset: int) -> list[object]:
    """``count`` segments spread over ``span`` from ``start``, round-robin over sources."""
    from advertisex.lake.catalog import SegmentDone

    marks = []
    for i in range(count):
        source = SOURCES[i % 3]
        at = start + span * i / count  # type: ignore[operator]
        segment = ax.landing.write_segment(  # type: ignore[attr-defined]
            source, b'{"a":1}\n', fmt="ndjson", label=f"c.{offset + i:07d}", at=at, fsync=False
        )
        committed = (at + timedelta(seconds=2)).isoformat()
        marks.append(SegmentDone(segment.name, source, f"b{i // 30}", 1, segment.size, committed))
    return marks


def commit(ax: object, marks: list[object]) -> None:
    with ax.lake.catalog.atomic(marks):  # type: ignore[attr-defined]
        pass


def batch_files(ax: object, count: int, start: object, span: timedelta) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from advertisex.model.schemas import TABLES

    schema = TABLES["ops.batches"].schema
    folder = Path(ax.lake.table("ops.batches").location().removeprefix("file://")) / "data"  # type: ignore[attr-defined]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for b in range(count):
        at = start + span * b / count  # type: ignore[operator]
        row = dict.fromkeys(schema.names) | {"batch_id": f"b{b}", "source": SOURCES[b % 3]}
        row |= {"started_at": at, "committed_at": at, "files": 1, "bytes": 1, "records_in": 10}
        row |= {"accepted": 10, "quarantined": 0, "filtered": 0, "duplicates": 0, "conflicts": 0}
        row |= {"segments": [], "new_fields": []}
        path = folder / f"b{b:06d}.parquet"
        pq.write_table(pa.Table.from_pylist([row], schema=schema), path)
        paths.append(f"file://{path}")
    ax.lake.commit_files({"ops.batches": paths}, [], {})  # type: ignore[attr-defined]


def timed(action: object) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action()  # type: ignore[operator]
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def status_command(data_dir: Path) -> tuple[float, float]:
    """Wall and CPU ms of ``advertisex status --format json`` in its own process."""
    from advertisex.util import jsonutil

    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(data_dir))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "advertisex.cli.app", "status", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    jsonutil.loads(out)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--segments", type=positive, default=40_000, help="per hour, all sources")
    parser.add_argument("--new", type=positive, default=330, help="landed between two looks")
    parser.add_argument("--batch-files", type=positive, default=600)
    args = parser.parse_args()

    import advertisex
    from advertisex.monitor.gather import Gatherer
    from advertisex.monitor.model import HOUR, floor_hour
    from advertisex.util.timeutil import utcnow

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        ax = advertisex.open(data_dir=data_dir)
        # The same moment in every run: 50 minutes into an hour (the previous one is past
        # settling and final, the current one holds 5/6 of --segments), whatever the clock.
        now = floor_hour(utcnow()) + timedelta(minutes=50)
        previous = floor_hour(now) - HOUR
        started = time.perf_counter()
        marks = land(ax, previous, HOUR, args.segments, 0)  # the previous hour, all of it
        in_this_hour = max(1, int(args.segments * (now - floor_hour(now)) / HOUR))
        marks += land(ax, floor_hour(now), now - floor_hour(now), in_this_hour, len(marks))
        pending = 30  # the last seconds' segments: not processed yet
        commit(ax, marks[:-pending])
        batch_files(ax, args.batch_files, now - timedelta(minutes=10), timedelta(minutes=10))
        print(
            f"{len(marks):,} segments ({args.segments:,} in the previous hour, "
            f"{in_this_hour:,} in this one, {pending} pending), {args.batch_files} ops.batches "
            f"files, written in {time.perf_counter() - started:.0f} s; "
            f"load {os.getloadavg()[0]:.2f}"
        )

        def clock() -> datetime:
            return now

        Gatherer(ax.settings, ax.lake, clock).observe(hourly=False)  # imports, first plans
        gatherer = Gatherer(ax.settings, ax.lake, clock)
        full = timed(lambda: gatherer.observe(hourly=False))
        commit(ax, marks[-pending:])
        new = land(ax, now - timedelta(seconds=30), timedelta(seconds=30), args.new, 10**6)
        commit(ax, new[: -pending // 3])
        step = timed(lambda: gatherer.observe(hourly=False))
        idle = timed(lambda: gatherer.observe(hourly=False))
        fresh = Gatherer(ax.settings, ax.lake, clock).observe(hourly=False)
        order = [("source", "ascending"), ("bucket", "ascending")]
        seen = gatherer.observe(hourly=False).arrivals
        same = seen.sort_by(order).equals(fresh.arrivals.sort_by(order))
        print(f"\nGatherer.observe (load {os.getloadavg()[0]:.2f})   wall ms    CPU ms")
        print(f"  full read (every segment, every mark) {full[0]:9.0f} {full[1]:9.0f}")
        print(f"  incremental, {args.new} new segments    {step[0]:9.0f} {step[1]:9.0f}")
        print(f"  incremental, nothing new             {idle[0]:9.0f} {idle[1]:9.0f}")
        print(f"  ratio full / incremental (CPU)       {full[1] / max(step[1], 0.1):9.1f}×")
        print(f"  incremental equals a fresh full read: {same}")
        first = status_command(data_dir)
        second = status_command(data_dir)
        print(
            f"\nadvertisex status --format json at minute {utcnow().minute} "
            f"(load {os.getloadavg()[0]:.2f})"
        )
        print(f"  first run (reads every hour)         {first[0]:9.0f} {first[1]:9.0f}")
        print(f"  again (final hours from the store)   {second[0]:9.0f} {second[1]:9.0f}")


if __name__ == "__main__":
    main()
