"""Bench: the demo's generator alone, in this process, as ``advertisex demo`` calls it.

    .venv/bin/python bench/generate.py                     # 1 M events, 3 runs
    .venv/bin/python bench/generate.py --events 200000 --repeat 5

Prints each run's CPU seconds (this process, every thread: polars' pool and the bid
files' writer thread) and wall seconds, their medians, and the load average before and
after: on a shared machine CPU is the figure to compare, wall says more about the load.
The first run pays the imports and is left out of the medians.
"""

from __future__ import annotations

import argparse
import os
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

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive, default=1_000_000)
    parser.add_argument("--repeat", type=positive, default=3, help="timed runs after a first one")
    args = parser.parse_args()
    print(f"load before: {load()}")
    cpu, wall = [], []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as folder:
        for run in range(args.repeat + 1):
            started, used = time.perf_counter(), time.process_time()
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
            note = " (imports included, not in the medians)" if run == 0 else ""
            print(f"run {run}: {cpu[-1]:.2f} s CPU, {wall[-1]:.2f} s wall{note}")
    print(
        f"{args.events:,} events: median {statistics.median(cpu[1:]):.2f} s CPU, "
        f"{statistics.median(wall[1:]):.2f} s wall; load after: {load()}"
    )


if __name__ == "__main__":
    main()
