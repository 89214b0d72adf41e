"""Bench: how long the CLI takes to answer, as a user runs it (a new process each time).

    .venv/bin/python bench/cli.py                          # a small lake made here
    .venv/bin/python bench/cli.py --data-dir advertisex-data   # any lake, e.g. after `up`

Times ``advertisex --help`` and ``advertisex query "select 1"`` (target ≤ 300 ms each, on
any lake size) and a query over one table, each the median of ``--repeat`` runs of the
console script, and prints each beside its target with the ratio, plus the load average
(the machine is shared: a figure means little without it). The CPU time of the runs
(user + system, of the child processes) is printed too: on a busy machine it is the
better guide to what the command costs. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.300


def run_timed(command: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds) of ``command`` run ``repeat`` times."""
    subprocess.run(command, env=env, check=True, capture_output=True)  # warm the page cache
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def small_lake(data_dir: Path) -> None:
    """A lake with every curated table: 20 k generated events ingested and processed."""
    script = str(Path(sys.executable).with_name("advertisex"))
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(data_dir))
    drop = data_dir.parent / "drop"
    for args in (
        ["generate", "--out", str(drop), "--events", "20000", "--seed", "3"],
        ["ingest", str(drop / "impressions"), str(drop / "clicks"), str(drop / "bids")],
        ["process"],
    ):
        subprocess.run([script, *args], env=env, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="an existing lake (default: make one)")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    script = str(Path(sys.executable).with_name("advertisex"))
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = Path(tmp) / "data"
            small_lake(data_dir)
        env = dict(os.environ, ADVERTISEX_DATA_DIR=str(data_dir.resolve()))
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        cases = [
            (["--help"], TARGET_S),
            (["query", "select 1"], TARGET_S),
            (["query", "select count(*) from curated.impressions"], None),
        ]
        for command, target in cases:
            wall, cpu = run_timed([script, *command], env, args.repeat)
            shown = " ".join(f'"{c}"' if " " in c else c for c in command)
            verdict = (
                f"target ≤ {target * 1000:.0f} ms → {wall / target:.2f}× the target"
                if target
                else "no target"
            )
            print(
                f"advertisex {shown:<50} {wall * 1000:6.0f} ms wall, {cpu * 1000:4.0f} ms CPU "
                f"(median of {args.repeat}; {verdict})"
            )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
