"""Bench: the demo's generator alone, in this process, as ``advertisex demo`` calls it
(pandas refused, as there).

    .venv/bin/python bench/generate.py                     # 1 M events, 3 runs
    .venv/bin/python bench/generate.py --events 200000 --repeat 5

Prints each run's CPU seconds (this process, every thread: polars' pool and the bid
files' writer thread; the system's share apart) and wall seconds, its minor page faults,
their medians, the process's peak RSS, and the load average before and after: on a
shared machine CPU is the figure to compare, wall says more about the load. The first
run pays the imports and is left out of the medians; it is also the one that meets fresh
memory only, as the demo's generator does (later runs reuse what the first one freed).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from _args import positive


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    from advertisex import synth
    from advertisex.util.nopandas import refuse

    refuse()  # as `advertisex demo` and `advertisex generate` run it: pandas is never needed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive, default=1_000_000)
    parser.add_argument("--repeat", type=positive, default=3, help="timed runs after a first one")
    args = parser.parse_args()
    print(f"load before: {load()}")
    cpu, wall = [], []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as folder:
        for run in range(args.repeat + 1):
            started, used = time.perf_counter(), time.process_time()
            before = resource.getrusage(resource.RUSAGE_SELF)
            synth.generate(
                Path(folder),
                events=args.events,
                seed=42,
                start=date(2026, 11, 20),
                faults=synth.FaultConfig.demo(),
                avro_level=0,  # the demo's choice
            )
            cpu.append(time.process_time() - used)
            wall.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_SELF)
            system = after.ru_stime - before.ru_stime
            faults = after.ru_minflt - before.ru_minflt
            note = " (imports included, not in the medians)" if run == 0 else ""
            print(
                f"run {run}: {cpu[-1]:.2f} s CPU ({system:.2f} s of it system), "
                f"{wall[-1]:.2f} s wall, {faults:,} minor page faults{note}"
            )
    print(
        f"{args.events:,} events: median {statistics.median(cpu[1:]):.2f} s CPU, "
        f"{statistics.median(wall[1:]):.2f} s wall; peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB; load after: {load()}"
    )


if __name__ == "__main__":
    main()
