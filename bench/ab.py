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
    python bench/ab.py --base 109cbfa --stages [--pairs 4]   # bench/stages.py's steps, alternated
    python bench/ab.py --one-core [--pairs 3]   # this checkout on one core (taskset -c 0) and on all

With ``--stages`` each run is the checkout's own ``bench/stages.py`` (the CPU of each step of
``process``, without the marts), and the steps' medians are compared: a step's CPU moves
far less with the host than the whole run's (the payload hashes of 2026-12-06: −0.15 s on
their step in four pairs of four, while the runs differed by −1.35 … +0.76 s).

With ``--one-core`` the runs alternate this checkout pinned to one core and unpinned, and
the figure is how many times longer the pinned run takes (the issue's "cores used").
"""

from __future__ import annotations

import argparse
import os
import re
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
    _compile(into)
    return into


def _compile(code: Path) -> None:
    """``code``'s bytecode, as `make install` leaves a checkout's: where
    PYTHONDONTWRITEBYTECODE is set, every run of code without it (a commit checked out
    here, or a module edited since the install) compiled its modules again — in the
    command, its forkserver and its workers: ≈ 0.4 s of wall a run."""
    subprocess.run([PY, "-m", "compileall", "-q", str(code / "advertisex")], check=True)


# A line of bench/stages.py's table: the step, its CPU seconds, µs an event.
_STEP = re.compile(r"^(?P<step>\S.*?)\s{2,}(?P<cpu>\d+\.\d+)\s+\d+\.\d+$")


def _in_turn(pair: int, base: Path) -> list[tuple[str, Path]]:
    """The two checkouts, named, in pair ``pair``'s order: neither always runs first."""
    order = [("base", base), ("this", ROOT)]
    return order if pair % 2 == 0 else order[::-1]


def _stages(base: Path, args: argparse.Namespace) -> None:
    """Each checkout's bench/stages.py, alternated ``args.pairs`` times; each step's CPU
    compared (medians, and in how many pairs this checkout's was lower)."""
    steps: dict[str, dict[str, list[float]]] = {"base": {}, "this": {}}
    for pair in range(args.pairs):
        for name, code in _in_turn(pair, base):
            command = [PY, str(code / "bench" / "stages.py"), "--events", str(args.events)]
            out = subprocess.run(
                command,
                env=dict(os.environ, PYTHONPATH=str(code)),
                cwd=code,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            for line in out.splitlines():
                if found := _STEP.match(line):
                    steps[name].setdefault(found["step"], []).append(float(found["cpu"]))
            total = next(
                (line for line in out.splitlines() if " s CPU in this process" in line), ""
            )
            print(f"pair {pair + 1}  {name:4}  {total.strip()}", flush=True)
    print(f"{'step (CPU s, medians)':58s} {'base':>7s} {'this':>7s} {'this−base':>10s}  lower")
    for step in sorted(steps["this"]):
        mine, theirs = steps["this"][step], steps["base"].get(step, [])
        if len(mine) != len(theirs):  # a step only one side has (renamed, new)
            print(f"{step:58s} {'—':>7s} {statistics.median(mine):7.3f}")
            continue
        lower = sum(m < t for m, t in zip(mine, theirs, strict=True))
        diff = statistics.median(m - t for m, t in zip(mine, theirs, strict=True))
        print(
            f"{step:58s} {statistics.median(theirs):7.3f} {statistics.median(mine):7.3f}"
            f" {diff:+10.3f}  {lower}/{len(mine)}"
        )


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
    parser.add_argument(
        "--stages", action="store_true", help="compare bench/stages.py's steps, not whole runs"
    )
    args = parser.parse_args()
    source = _dataset(args.events)
    _compile(ROOT)  # edited modules' bytecode too, as the other commit's is
    if args.one_core:
        _one_core(source, args.pairs, not args.no_marts)
        return
    scratch = Path(tempfile.mkdtemp(prefix="adx-ab-"))
    try:
        base = _checkout(args.base, scratch / "base")
        if args.stages:
            _stages(base, args)
            return
        runs: dict[str, list[tuple[float, float, float]]] = {"base": [], "this": []}
        for pair in range(args.pairs):
            for name, code in _in_turn(pair, base):
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
