"""`advertisex process` of this checkout against another commit's, alternated in one window.

This host's speed drifts by up to 20 % within the hour, so a figure measured at another
time says little about a change. This script ingests ``bench/process.py``'s data set into
a new lake (not timed) and runs ``process`` on it, with the other commit's code and with
this checkout's, one after the other (each first in every other pair), ``--pairs`` times;
each run's wall time and CPU (the command and every process it waited for: its decoder
workers) are printed, then the pairwise differences. The other commit is checked out in a
temporary worktree, its compiled helpers built there with ``cc`` and its modules' bytecode
compiled, as this checkout's are; the marts' own seconds (the command's report) are
printed beside, a change to them being easier to see there. Single pairs differ by up to ±1 s on this host (two
runs of the same code, 2026-12-06): take enough pairs for the difference sought.

    python bench/ab.py --base 109cbfa [--pairs 3] [--events 2000000] [--no-marts]
    python bench/ab.py --one-core [--pairs 3]   # this checkout on one core (taskset -c 0) and on all

With ``--one-core`` the runs alternate this checkout pinned to one core and unpinned, and
the figure is how many times longer the pinned run takes (the issue's "cores used").
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from _args import positive
from _checkout import ROOT
from process import _dataset

from advertisex.util import jsonutil

PY = sys.executable


def _checkout(commit: str, into: Path) -> Path:
    """A worktree of ``commit``, its compiled helpers built (when it has them)."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(into), commit],
        check=True,
    )
    # (sources, the package the library goes in): advertisex/native, or before the move
    # advertisex/kernels/native for advertisex/kernels
    code = into / "advertisex"
    for folder, package in (
        (code / "native", code / "native"),
        (code / "kernels" / "native", code / "kernels"),
    ):
        sources = sorted(str(p) for p in folder.glob("*.c"))
        if sources:
            library = package / f"_native{sysconfig.get_config_var('EXT_SUFFIX')}"
            command = ["cc", "-O2", "-shared", "-fPIC", "-o", str(library), *sources]
            subprocess.run(command, check=True)
            break
    # Its bytecode, as `make install` leaves this checkout's: where PYTHONDONTWRITEBYTECODE
    # is set every run of the other code compiled its modules again (in the command, its
    # forkserver and its workers), ≈ 0.4 s of wall a run against it.
    subprocess.run([PY, "-m", "compileall", "-q", str(into / "advertisex")], check=True)
    return into


def _run(code: Path, source: Path, marts: bool, pin: bool = False) -> tuple[float, float, float]:
    """(wall s, CPU s, the marts' update s as the command reports it) of ``process`` with
    ``code``'s package, on a new lake holding ``source`` (ingested by this checkout, not
    timed)."""
    work = Path(tempfile.mkdtemp(prefix="adx-ab-"))
    try:
        env = dict(
            os.environ,
            ADVERTISEX_DATA_DIR=str(work / "data"),
            ADVERTISEX_CORRELATION__UPDATE_MARTS="true" if marts else "false",
        )
        ingest = [PY, "-m", "advertisex.cli.app", "ingest", str(source), "--format", "json"]
        here = dict(env, PYTHONPATH=str(ROOT))
        subprocess.run(ingest, env=here, cwd=work, check=True, stdout=subprocess.DEVNULL)
        command = [PY, "-m", "advertisex.cli.app", "process", "--format", "json"]
        if pin:
            command = ["taskset", "-c", "0", *command]
        started = time.perf_counter()
        report = work / "report.json"
        with report.open("wb") as out:
            child = subprocess.Popen(
                command, env=dict(env, PYTHONPATH=str(code)), cwd=work, stdout=out
            )
            _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"process failed with {code}'s code (status {status})")
        marts_s = jsonutil.loads(report.read_bytes()).get("marts_seconds") or 0.0
        return wall, usage.ru_utime + usage.ru_stime, marts_s
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--base", help="the commit to compare this checkout with")
    which.add_argument("--one-core", action="store_true", help="this checkout on one core and all")
    parser.add_argument("--pairs", type=positive, default=3)
    parser.add_argument("--events", type=positive, default=2_000_000)
    parser.add_argument("--no-marts", action="store_true", help="leave the marts' update out")
    args = parser.parse_args()
    source = _dataset(args.events)
    if args.one_core:
        _one_core(source, args.pairs, not args.no_marts)
        return
    scratch = Path(tempfile.mkdtemp(prefix="adx-ab-"))
    try:
        base = _checkout(args.base, scratch / "base")
        runs: dict[str, list[tuple[float, float, float]]] = {"base": [], "this": []}
        for pair in range(args.pairs):
            order = [("base", base), ("this", ROOT)]
            for name, code in order if pair % 2 == 0 else order[::-1]:  # neither always first
                wall, cpu, marts_s = _run(code, source, not args.no_marts)
                runs[name].append((wall, cpu, marts_s))
                print(
                    f"pair {pair + 1}  {name:4}  wall {wall:6.2f} s  CPU {cpu:6.2f} s"
                    f"  marts {marts_s:5.2f} s",
                    flush=True,
                )
        walls = [t[0] - b[0] for b, t in zip(runs["base"], runs["this"], strict=True)]
        cpus = [t[1] - b[1] for b, t in zip(runs["base"], runs["this"], strict=True)]
        marts = [t[2] - b[2] for b, t in zip(runs["base"], runs["this"], strict=True)]
        print(
            f"this − {args.base}, pair by pair: wall {min(walls):+.2f} … {max(walls):+.2f} s "
            f"(median {statistics.median(walls):+.2f}), CPU {min(cpus):+.2f} … {max(cpus):+.2f} s "
            f"(median {statistics.median(cpus):+.2f})"
            + (
                ""
                if args.no_marts
                else f", marts {min(marts):+.2f} … {max(marts):+.2f} s"
                f" (median {statistics.median(marts):+.2f})"
            )
        )
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(scratch / "base")],
            check=False,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(scratch, ignore_errors=True)


def _one_core(source: Path, pairs: int, marts: bool) -> None:
    ratios = []
    for pair in range(pairs):
        one, _, _ = _run(ROOT, source, marts, pin=True)
        both, _, _ = _run(ROOT, source, marts)
        ratios.append(one / both)
        print(
            f"pair {pair + 1}  one core {one:6.2f} s  both {both:6.2f} s  → {one / both:.2f}×",
            flush=True,
        )
    print(f"one core against both: {min(ratios):.2f} … {max(ratios):.2f}× (target ≥ 1.6×)")


if __name__ == "__main__":
    main()
