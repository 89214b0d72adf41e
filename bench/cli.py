"""Bench: how long the CLI takes to answer, as a user runs it (a new process each time).

    .venv/bin/python bench/cli.py                          # a small lake and a many-commit lake, made here
    .venv/bin/python bench/cli.py --commits 300            # more commits in the second lake
    .venv/bin/python bench/cli.py --data-dir advertisex-data   # any lake, e.g. after `up`

Times ``advertisex --help``, ``advertisex query "select 1"`` and ``advertisex report
campaigns`` (target ≤ 300 ms each, whole command, on any lake size) and a query over one
table, each the median of ``--repeat`` runs of the console script in a fresh process, and
prints each beside its target with the ratio, plus the load average (the machine is
shared: a figure means little without it). The CPU time of the runs (user + system, of
the child processes) is printed too: on a busy machine it is the better guide to what
the command costs.

Two lakes unless ``--data-dir`` names one: a small one (20 k generated events, one batch)
and one after many commits (``--commits`` batches of a few events each, as a long ``up``
leaves it: a snapshot, a manifest list and a metadata file per commit). The report over
30 days of 100 M impressions' worth of marts is ``bench/report.py`` (it writes the mart
rows directly). Bytecode is cached as a normal install does (a ``PYTHONDONTWRITEBYTECODE``
in the environment is not passed on: without it every run would compile the package
again). Asserts nothing.
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

from _args import positive
from _checkout import use_this_checkout

TARGET_S = 0.300
SCRIPT = str(Path(sys.executable).with_name("advertisex"))
CASES: list[tuple[list[str], float | None]] = [
    (["--help"], TARGET_S),
    (["query", "select 1"], TARGET_S),
    (["report", "campaigns"], TARGET_S),
    (["query", "select count(*) from curated.impressions"], None),
]


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


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(data_dir.resolve()), **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def small_lake(data_dir: Path) -> None:
    """A lake with every curated table: 20 k generated events ingested and processed."""
    env = environment(data_dir)
    drop = data_dir.parent / "drop"
    for args in (
        ["generate", "--out", str(drop), "--events", "20000", "--seed", "3"],
        ["ingest", str(drop / "impressions"), str(drop / "clicks"), str(drop / "bids")],
        ["process"],
    ):
        subprocess.run([SCRIPT, *args], env=env, check=True, capture_output=True)


def many_commit_lake(data_dir: Path, commits: int) -> None:
    """A lake after ``commits`` small batches, each committed on its own (impressions,
    clicks, marts and ops.batches get a snapshot each), with no maintenance in between."""
    import advertisex

    ax = advertisex.open(data_dir=data_dir)
    for i in range(commits):
        line = (
            f'{{"impression_id": "imp-{i}", "timestamp": "2026-11-20T10:{i % 60:02d}:00Z", '
            f'"ad_creative_id": "cr-1", "campaign_id": "cmp-1", "user_id": "u-{i % 7}", '
            f'"website": "news.example"}}\n'
        )
        ax.landing.write_segment("impressions", line.encode(), fsync=False)
        ax.process()


def measure(label: str, data_dir: Path, repeat: int) -> None:
    env = environment(data_dir)
    print(f"{label} — load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for command, target in CASES:
        wall, cpu = run_timed([SCRIPT, *command], env, repeat)
        shown = " ".join(f'"{c}"' if " " in c else c for c in command)
        verdict = (
            f"target ≤ {target * 1000:.0f} ms → {wall / target:.2f}× the target"
            if target
            else "no target"
        )
        print(
            f"  advertisex {shown:<48} {wall * 1000:6.0f} ms wall, {cpu * 1000:4.0f} ms CPU "
            f"(median of {repeat}; {verdict})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="an existing lake (default: make two)")
    parser.add_argument("--commits", type=positive, default=60, help="commits of the second lake")
    parser.add_argument("--repeat", type=positive, default=10)
    args = parser.parse_args()
    use_this_checkout()  # not the checkout the virtualenv installed (bench/_checkout.py)
    if args.data_dir is not None:
        measure(f"lake {args.data_dir}", args.data_dir, args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small" / "data"
        small_lake(small)
        measure("small lake (20 k events, one batch)", small, args.repeat)
        many = Path(tmp) / "many" / "data"
        started = time.perf_counter()
        many_commit_lake(many, args.commits)
        print(f"({args.commits} commits made in {time.perf_counter() - started:.0f} s)")
        measure(f"lake after {args.commits} commits", many, args.repeat)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
