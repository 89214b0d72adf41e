"""Bench: the demo's generator alone, as ``advertisex demo`` calls it (pandas refused, as
there).

    .venv/bin/python bench/generate.py                     # 1 M events, 3 runs
    .venv/bin/python bench/generate.py --events 200000 --repeat 5
    .venv/bin/python bench/generate.py --fresh --repeat 5  # each run a new process

Prints each run's CPU seconds (every thread: polars' pool and the bid files' writer
thread; the system's share apart) and wall seconds, its minor page faults, their medians,
the peak RSS, and the load average before and after: on a shared machine CPU is the
figure to compare, wall says more about the load.

By default the runs share this process: the first pays the imports and is left out of the
medians, and the later ones reuse the memory the first one freed. ``--fresh`` runs each in
a new interpreter, its imports done before the clock starts, so every run meets fresh
memory only — the case of ``advertisex demo`` and ``advertisex generate``, which generate
once: a change that saves fresh memory shows there and not in the shared runs.
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
from datetime import date
from pathlib import Path

from _args import positive
from _checkout import use_this_checkout


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def one_run(folder: Path, events: int) -> dict[str, float]:
    """One generation into ``folder``: CPU, system and wall seconds, minor page faults."""
    from advertisex import synth

    started, used = time.perf_counter(), time.process_time()
    before = resource.getrusage(resource.RUSAGE_SELF)
    synth.generate(
        folder,
        events=events,
        seed=42,
        start=date(2026, 11, 20),
        faults=synth.FaultConfig.demo(),
        avro_level=0,  # the demo's choice
    )
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu": time.process_time() - used,
        "wall": time.perf_counter() - started,
        "system": after.ru_stime - before.ru_stime,
        "faults": after.ru_minflt - before.ru_minflt,
        "rss_mib": after.ru_maxrss / 1024,
    }


def child(folder: Path, events: int) -> None:
    """A ``--fresh`` run: the generator's modules imported, then one timed run, as JSON."""
    import fastavro  # noqa: F401
    import numpy  # noqa: F401
    import polars  # noqa: F401
    import polars_avro  # noqa: F401

    from advertisex import synth  # noqa: F401
    from advertisex.util import jsonutil

    print(jsonutil.dumps_str(one_run(folder, events)))


def fresh_run(folder: Path, events: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(folder), "--events", str(events)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:  # the run's own message, not this script's traceback
        raise SystemExit(f"a fresh run failed:\n{done.stderr.strip()}")
    from advertisex.util import jsonutil

    return jsonutil.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive, default=1_000_000)
    parser.add_argument("--repeat", type=positive, default=3, help="timed runs (after a first)")
    parser.add_argument("--fresh", action="store_true", help="each run in a new process")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    use_this_checkout()  # not the checkout the virtualenv installed (bench/_checkout.py)
    from advertisex.util.nopandas import refuse

    refuse()  # as `advertisex demo` and `advertisex generate` run it: pandas is never needed
    if args.child is not None:
        child(args.child, args.events)
        return
    print(f"load before: {load()}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as folder:
        for run in range(args.repeat + (0 if args.fresh else 1)):
            measured = (fresh_run if args.fresh else one_run)(Path(folder), args.events)
            runs.append(measured)
            note = " (imports included, not in the medians)" if run == 0 and not args.fresh else ""
            print(
                f"run {run}: {measured['cpu']:.2f} s CPU ({measured['system']:.2f} s of it "
                f"system), {measured['wall']:.2f} s wall, {measured['faults']:,.0f} minor page "
                f"faults{note}"
            )
    timed = runs if args.fresh else runs[1:]
    peak = max(r["rss_mib"] for r in runs)
    kind = "each run a new process" if args.fresh else "runs after the first, in one process"
    print(
        f"{args.events:,} events ({kind}): median {statistics.median(r['cpu'] for r in timed):.2f} s "
        f"CPU, {statistics.median(r['wall'] for r in timed):.2f} s wall; peak RSS {peak:,.0f} MiB; "
        f"load after: {load()}"
    )


if __name__ == "__main__":
    main()
