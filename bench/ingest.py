"""`advertisex ingest` of ``bench/process.py``'s data set into a new lake, run after run:
its wall time, its CPU (user and system) and its page faults.

Ingest copies every file into the landing zone and fsyncs it; where the kernel can, it
copies them itself (``advertisex.landing.staged``). Each run starts after ``sync`` and a
second's pause, so the one before's writes are not flushed during it.

    python bench/ingest.py [--events 2000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import positive
from _checkout import use_this_checkout
from process import _dataset


def _run(source: Path, lake: Path) -> tuple[float, float, float, int]:
    """(wall s, user s, system s, minor page faults) of one ingest into ``lake``."""
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(lake))
    command = [
        sys.executable,
        "-m",
        "advertisex.cli.app",
        "ingest",
        str(source),
        "--format",
        "json",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"advertisex ingest failed ({done.returncode}):\n{done.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        wall,
        after.ru_utime - before.ru_utime,
        after.ru_stime - before.ru_stime,
        after.ru_minflt - before.ru_minflt,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive, default=2_000_000)
    parser.add_argument("--repeat", type=positive, default=3)
    args = parser.parse_args()
    use_this_checkout()  # not the checkout the virtualenv installed (bench/_checkout.py)
    source = _dataset(args.events)
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    print(f"advertisex ingest, {args.events:,} events ({size / 1e6:,.0f} MB in {source})")
    for run in range(1, args.repeat + 1):
        work = Path(tempfile.mkdtemp(prefix="adx-bench-ingest-"))
        try:
            os.sync()
            time.sleep(1)
            wall, user, system, faults = _run(source, work / "data")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(
            f"  run {run}: {wall:.2f} s wall, CPU {user:.2f} s user + {system:.2f} s system, "
            f"{faults:,} page faults  → {size / 1e6 / wall:,.0f} MB/s"
        )


if __name__ == "__main__":
    main()
