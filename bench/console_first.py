"""Bench: the first console/API query of a new query worker against one of a kept worker.

    .venv/bin/python bench/console_first.py                    # 7 rounds, query forkserver
    .venv/bin/python bench/console_first.py --forkserver decoder --rounds 11

A query slot's worker is stopped after ``IDLE_WORKER_SECONDS`` idle or when another process
needs the slot, and the next query of the slot forks a new one from the forkserver. This
builds the console tests' small lake (3,000 events over two days) in a temporary folder,
then, for each statement, ``--rounds`` times: a new worker answers it (its start
included: what the console's query waits for), the same worker answers it again (kept),
and the worker is stopped. ``--forkserver query`` is ``advertisex console`` (the query
pool starts the process's forkserver with its own preload); ``decoder`` is ``serve`` and
``up``, where the collector's decoder pool starts it (with the decoders' preload, and the
query workers' that the console's ``QueryWorkers`` asked for: ``isolate.preload_too``).

Reports the median wall time of the query as the console's ``run_isolated`` waits for it,
the worker's own CPU time (``/proc``: its start and the query, not the forkserver's work
before the fork), and the idle worker's anonymous resident memory (what
``console.query_memory_bytes`` counts) before its first query and after the second; with
the load average, as a shared machine inflates wall time. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _args import positive

STATEMENTS = ("select 1", "select count(*) from curated.impressions")


def build_lake(base: Path) -> None:
    """The console tests' lake: two days of generated traffic with the demo's faults."""
    import advertisex
    from advertisex.synth import FaultConfig, generate

    generate(
        base / "in",
        events=3_000,
        seed=11,
        start=date(2026, 11, 20),
        days=2,
        faults=FaultConfig.demo(),
    )
    ax = advertisex.open(data_dir=base / "data")
    ax.ingest([str(base / "in" / source) for source in ("impressions", "clicks", "bids")])
    ax.process()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` so far."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=positive, default=7, help="new workers per statement")
    parser.add_argument(
        "--forkserver",
        choices=("query", "decoder"),
        default="query",
        help="who starts the process's forkserver (default: the query pool)",
    )
    parser.add_argument("--build", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build_lake(Path(args.build))
        return

    import advertisex
    from advertisex.console.query import QueryWorkers, run_isolated
    from advertisex.util.isolate import _resident_bytes

    with tempfile.TemporaryDirectory(prefix="adx-console-first-") as folder:
        # Built by another process: processing here would start this one's forkserver.
        data_dir = Path(folder) / "data"
        subprocess.run([sys.executable, __file__, "--build", folder], check=True)
        settings = advertisex.open(data_dir=data_dir).lake.settings
        config = settings.console
        workers = QueryWorkers()  # as the console's app is made before the collector starts
        if args.forkserver == "decoder":  # the collector's start: its decoder workers
            from advertisex.formats.bounded import decode_pool

            decoders = decode_pool()
            decoders.warm()
            while decoders.alive() < decoders.size:
                time.sleep(0.01)

        def query(sql: str) -> float:
            started = time.perf_counter()
            run_isolated(
                settings,
                sql,
                max_rows=config.query_max_rows,
                timeout=config.query_timeout_seconds,
                memory_bytes=config.query_share_bytes,
                max_bytes=config.query_max_bytes,
                pool=workers.pool(0),
            )
            return time.perf_counter() - started

        query("select 1")  # the forkserver started, its imports done
        workers.stop(0)
        print(
            f"forkserver: {args.forkserver}'s preload; load average "
            f"{os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds"
        )
        print(
            f"{'statement':42} {'new worker':>11} {'its CPU':>8} {'kept':>7} {'its CPU':>8}"
            f" {'idle anon RSS before/after':>27}"
        )
        for sql in STATEMENTS:
            first, first_cpu, kept, kept_cpu, before, after = [], [], [], [], [], []
            for _ in range(args.rounds):
                pool = workers.pool(0)
                pool.warm()  # a new worker, to see its memory before its first query
                while not pool._idle:
                    time.sleep(0.005)
                pid = pool._idle[0].process.pid
                before.append(_resident_bytes(pid))
                workers.stop(0)
                first.append(query(sql))  # the worker forked for this query
                pid = pool._idle[0].process.pid
                first_cpu.append(cpu_seconds(pid))
                kept.append(query(sql))
                kept_cpu.append(cpu_seconds(pid) - first_cpu[-1])
                after.append(_resident_bytes(pid))
                workers.stop(0)
            print(
                f"{sql:42} {statistics.median(first) * 1000:8.0f} ms"
                f" {statistics.median(first_cpu) * 1000:5.0f} ms"
                f" {statistics.median(kept) * 1000:4.0f} ms"
                f" {statistics.median(kept_cpu) * 1000:5.0f} ms"
                f" {statistics.median(before) / 2**20:17.0f} / {statistics.median(after) / 2**20:.0f} MiB"
            )
    sys.exit(0)


if __name__ == "__main__":
    main()
