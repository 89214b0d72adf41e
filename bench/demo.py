"""Bench: ``advertisex demo`` as a user runs it, end to end, in an empty folder.

    .venv/bin/python bench/demo.py                    # 1 M events, the issue's figure
    .venv/bin/python bench/demo.py --events 200000 --repeat 3

Runs the console script ``advertisex demo --format json`` in a new empty folder (install
excluded, Python's start-up and imports included) and prints the whole command's wall
time beside the target (≤ 8 s for 1 M events) with the ratio, each phase the demo timed
(generate, ingest, process and its parts, report, check; start-up is the command's wall
time less the demo's own total), the CPU time of the command (user + system of the
processes it waited for) and of the decoder workers it left to the forkserver (sampled),
and the load average before and after: the machine is shared,
and a figure means little without it. Fails when the demo's rows do not match its truth.
``--timeline`` adds, per phase, the cores the demo's process tree used and the cores the
machine left idle (``bench/_timeline.py``): where a core waits.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _args import positive
from _checkout import use_this_checkout
from _timeline import Sampler, print_phases
from _treecpu import TreeCpu

from advertisex.util import jsonutil

TARGET_S = 8.0


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_demo(
    events: int, folder: Path, sampler: Sampler | None = None
) -> tuple[float, float, float, dict]:
    """(wall seconds, CPU seconds of the command and what it waited for, CPU seconds of the
    processes it left to others, the demo's JSON) of one demo run in ``folder``;
    ``sampler`` (not started): samples the demo's process tree while it runs.

    The decoder workers are children of multiprocessing's forkserver, which the command
    does not wait for: their CPU never reaches this process's ``RUSAGE_CHILDREN`` (1.0-1.4 s
    of a demo's ≈ 13 s). They are sampled every 0.1 s instead (a floor: what one did after
    its last sample is lost)."""
    script = str(Path(sys.executable).with_name("advertisex"))
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(folder / "advertisex-data"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with subprocess.Popen(
        [script, "demo", "--events", str(events), "--format", "json"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as demo:
        tree = TreeCpu(demo.pid, interval=0.1).start()
        if sampler is not None:
            sampler.pid = demo.pid
            with sampler:
                out, err = demo.communicate()
        else:
            out, err = demo.communicate()
        tree.stop()
    wall = time.perf_counter() - started
    # The command's own CPU is its rusage (exact); of the sampled tree, its descendants.
    descendants = sum(cpu for pid, (_, cpu) in tree.seen.items() if pid != demo.pid)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if demo.returncode != 0:
        sys.exit(f"advertisex demo failed ({demo.returncode}):\n{err[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, descendants, jsonutil.loads(out)


def phase_spans(wall: float, timings: dict, phases: dict) -> list[tuple[str, float, float]]:
    """(phase, start, end) in seconds from the command's start: start-up, then the demo's
    phases in order, ``process`` in its parts (what the runner does around them counted in
    the part before), then what follows the demo's answer (exit)."""
    spans = []
    at = wall - timings["total"]
    spans.append(("start-up", 0.0, at))
    for name in ("generate", "ingest", "process", "report", "check"):
        if name == "process":
            parts = [(k, v) for k, v in phases.items() if k.startswith("process: ")]
            end = at + timings[name]
            for i, (part, seconds) in enumerate(parts):
                spans.append((part, at, end if i == len(parts) - 1 else at + seconds))
                at += seconds
            at = end
            continue
        spans.append((name, at, at + timings[name]))
        at += timings[name]
    spans.append(("exit", at, wall))
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive, default=1_000_000)
    parser.add_argument("--repeat", type=positive, default=1, help="runs, each in a new folder")
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="sample the demo's process tree every 50 ms and print, per phase, the cores it "
        "used, the cores the machine left idle and its busiest threads",
    )
    args = parser.parse_args()
    use_this_checkout()  # not the checkout the virtualenv installed (bench/_checkout.py)
    for run in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory(prefix="advertisex-demo-") as tmp:
            print(f"run {run}: load average before {load()}", flush=True)
            sampler = Sampler(0) if args.timeline else None
            wall, cpu, workers_cpu, result = run_demo(args.events, Path(tmp), sampler)
            timings, phases = result["timings_s"], result["phases_s"]
            ok = all(row["match"] for row in result["truth_check"])
            target = TARGET_S * args.events / 1_000_000
            print(
                f"  advertisex demo, {args.events:,} events: {wall:.2f} s wall "
                f"(target ≤ {target:.1f} s → {wall / target:.2f}× the target), "
                f"{cpu + workers_cpu:.1f} s CPU ({cpu:.1f} s the command, {workers_cpu:.1f} s "
                f"its decoder workers and their forkserver), truth check {'ok' if ok else 'MISMATCH'}"
            )
            cpus = result.get("cpu_s", {})
            shown = {"start-up": wall - timings["total"], **timings, **phases}
            print(f"    {'phase':<20} {'wall':>7}   CPU of the demo's own process")
            for name, seconds in shown.items():
                spent = f"{cpus[name]:6.2f} s" if name in cpus else ""
                print(f"    {name:<20} {seconds:6.2f} s {spent}")
            if sampler is not None:
                print_phases(sampler.samples, phase_spans(wall, timings, phases))
            print(f"  load average after {load()}", flush=True)
            if not ok:
                sys.exit("the demo's rows do not match its truth.json")


if __name__ == "__main__":
    main()
