"""Where each thread of `advertisex process` spends its life: running, waiting for a core
(runnable, on the run queue) or asleep (a lock, the GIL, a decoder worker's answer, I/O).

Ingests ``bench/process.py``'s data set into a new lake, runs ``advertisex process`` (no
marts) and reads every thread's ``/proc/<pid>/task/<tid>/schedstat`` of the process tree
every 20 ms (the kernel's own counts: time on a core, time runnable but waiting for one);
a thread's life is from the first sample that saw it to the last. The busiest threads are
listed apart (the piece threads, the decoder workers, the main thread), the rest summed.

    python bench/threads.py [--events 2000000] [--top 8]
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import positive
from _checkout import use_this_checkout
from process import _dataset


def _schedstat(pid: int) -> dict[int, tuple[float, float]]:
    """(seconds on a core, seconds runnable waiting for one) of each thread of ``pid``."""
    found = {}
    for task in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            ran, waited, _ = (int(v) for v in Path(task).read_text().split())
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        found[int(task.split("/")[-2])] = (ran / 1e9, waited / 1e9)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive, default=2_000_000)
    parser.add_argument("--top", type=positive, default=8)
    args = parser.parse_args()
    use_this_checkout()
    import psutil

    source = _dataset(args.events)
    work = tempfile.mkdtemp(prefix="adx-threads-")
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(Path(work) / "data"))
    env["ADVERTISEX_CORRELATION__UPDATE_MARTS"] = "false"
    command = [sys.executable, "-m", "advertisex.cli.app"]
    subprocess.run(
        [*command, "ingest", str(source), "--format", "json"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    started = time.perf_counter()
    child = subprocess.Popen(
        [*command, "process", "--format", "json"], env=env, stdout=subprocess.DEVNULL
    )
    root = psutil.Process(child.pid)
    seen: dict[tuple[int, int], tuple[float, float, float, float]] = {}  # first, last, ran, waited
    while child.poll() is None:
        try:
            pids = [child.pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.Error:
            pids = [child.pid]
        now = time.perf_counter() - started
        for pid in pids:
            for tid, (ran, waited) in _schedstat(pid).items():
                first = seen.get((pid, tid), (now,))[0]
                seen[(pid, tid)] = (first, now, ran, waited)
        time.sleep(0.02)
    wall = time.perf_counter() - started
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    print(f"\nadvertisex process, {args.events:,} events: {wall:.2f} s")
    print(
        f"{'thread':28s} {'life s':>7s} {'running':>8s} {'waiting for a core':>19s} {'asleep':>7s}"
    )
    ranked = sorted(seen.items(), key=lambda item: -item[1][2])
    for (pid, tid), (first, last, ran, waited) in ranked[: args.top]:
        if pid == child.pid:
            name = "command, main" if tid == pid else f"command, thread {tid}"
        else:  # the forkserver and the decoder workers it forked: one thread each
            name = f"worker process {pid}"
        life = last - first
        print(
            f"{name:28s} {life:7.2f} {ran:8.2f} {waited:19.2f} {max(life - ran - waited, 0):7.2f}"
        )
    rest = ranked[args.top :]
    print(
        f"{f'{len(rest)} others':28s} {'':7s} {sum(r[1][2] for r in rest):8.2f} "
        f"{sum(r[1][3] for r in rest):19.2f}"
    )
    print(
        f"{'all':28s} {'':7s} {sum(v[2] for v in seen.values()):8.2f} "
        f"{sum(v[3] for v in seen.values()):19.2f}"
    )


if __name__ == "__main__":  # the decoder workers' forkserver imports this file again
    main()
