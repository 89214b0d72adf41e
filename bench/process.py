"""Batch pipeline throughput: generate N mixed events once, then time ingest + process.

Prints AdvertiseX's events/s and peak memory beside a straightforward pandas
implementation of the same steps (bench/pandas_baseline.py) and, when asked, the
reference ceilings of ../shared/reference-bench (bare DuckDB / Polars jobs on
impressions alone), all run in this session on this machine.

    python bench/process.py [--events 2000000] [--reference] [--repeat 3]
    python bench/process.py --with-marts --onto-existing 500000   # a day's batch, marts updated

Each measured job runs in its own process so peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _args import positive
from _checkout import use_this_checkout
from _timeline import machine_idle

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
# ../shared/reference-bench beside the checkout, or above it for a worktree of it.
REFERENCE = next(
    (
        p / "shared" / "reference-bench"
        for p in HERE.parents
        if (p / "shared" / "reference-bench").is_dir()
    ),
    HERE.parent.parent / "shared" / "reference-bench",
)
PY = sys.executable
TARGET_RATE = 300_000  # events/s, ingest + process (issue 14)
TARGET_PEAK_MIB = 1536  # peak RSS of the process run


@dataclass
class Run:
    """One measured job: wall seconds, its own peak RSS (exact, MiB), the peak RSS of its
    whole process tree (its decoder workers too: proportional set sizes, shared pages
    counted once) and the CPU seconds of that tree (both sampled every 0.1 s: the sizes as
    :func:`_measured` says), and what it printed."""

    seconds: float
    peak_mb: float
    tree_peak_mb: float
    cpu_s: float
    stdout: str
    # (seconds since the start, the tree's PSS in MiB — read, or scaled from its RSS) every sample.
    samples: list[tuple[float, float]] = field(default_factory=list)
    # Core-seconds the whole machine left idle while the job ran (/proc/stat, iowait included):
    # beside ``seconds`` × the cores, the share of the machine the job did not use.
    idle_s: float = 0.0

    def idle_line(self) -> str:
        cores = os.cpu_count() or 1
        return (
            f"idle cores {self.idle_s:.2f} core-s of {cores} × {self.seconds:.2f} s "
            f"({self.idle_s / (cores * self.seconds):.0%} of the machine; a floor, the sampling here uses some)"
        )

    def tree_peak_since(self, seconds_before_end: float) -> float:
        """The tree's peak over the run's last ``seconds_before_end`` seconds."""
        start = self.seconds - seconds_before_end
        return max((mb for at, mb in self.samples if at >= start), default=0.0)

    def tree_peak_before(self, seconds_before_end: float) -> float:
        """The tree's peak before the run's last ``seconds_before_end`` seconds."""
        start = self.seconds - seconds_before_end
        return max((mb for at, mb in self.samples if at < start), default=0.0)


def _measured(cmd: list[str], env: dict[str, str] | None = None, exact_memory: bool = False) -> Run:
    """Run ``cmd`` in a child process of its own, watching its process tree.

    A proportional set size is read from ``/proc/PID/smaps_rollup``, which walks the
    process's page tables under its memory-map lock: read for the whole tree ten times a
    second it slowed a 2 M-event ``process`` by 0.5-0.6 s (7.6-7.7 s against 7.1 s without
    it). So the tree's resident size, which costs nothing to read, is sampled, and its
    proportional size is read only when the resident size reaches a new high (1 % above
    the last read); the samples between reads scale the last read by the resident size
    since. That peak can miss the true one (a 10 M backlog: 1,248 MiB against 1,335 read
    every sample): a memory figure is measured with ``exact_memory``, every sample read.
    """
    import psutil

    with tempfile.NamedTemporaryFile(suffix=".peak") as peak_file:
        wrapped = [cmd[0], str(HERE / "_peak.py"), peak_file.name, *cmd[1:]]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            idle_before, started = machine_idle(), time.perf_counter()
            child = subprocess.Popen(wrapped, env=env, stdout=out, stderr=err, text=True)
            # The end is taken when the command exits, not at the next sample: polled every
            # 0.1 s, a run's time came out 0.05 s long on average (0.1 s at worst).
            ended: list[float] = []
            idle_after: list[float] = []
            waiter = threading.Thread(
                target=lambda: (
                    child.wait(),
                    ended.append(time.perf_counter()),
                    idle_after.append(machine_idle()),
                ),
                daemon=True,
            )
            root = psutil.Process(child.pid)  # before the waiter can reap it
            waiter.start()
            cpu: dict[int, float] = {}
            tree_peak = 0.0
            read_at_rss, pss_per_rss = 0, 1.0  # the resident size at the last read, its ratio
            samples = []
            while waiter.is_alive():
                try:
                    tree = [root, *root.children(recursive=True)]
                except psutil.Error:
                    tree = []
                rss = 0
                for proc in tree:
                    try:
                        times = proc.cpu_times()
                        cpu[proc.pid] = times.user + times.system
                        rss += proc.memory_info().rss
                    except psutil.Error:
                        pass
                if exact_memory or rss > read_at_rss * 1.01:
                    pss = 0
                    for proc in tree:
                        try:
                            # Proportional: libraries the workers share are counted once.
                            pss += proc.memory_full_info().pss
                        except psutil.Error:
                            pass
                    read_at_rss, pss_per_rss = rss, pss / rss if rss else 1.0
                    tree_peak = max(tree_peak, pss)
                samples.append((time.perf_counter() - started, rss * pss_per_rss / (1 << 20)))
                waiter.join(0.1)
            seconds = ended[0] - started
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if child.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
        peak = float(Path(peak_file.name).read_text() or 0)
    idle = idle_after[0] - idle_before
    return Run(seconds, peak, tree_peak / (1 << 20), sum(cpu.values()), stdout, samples, idle)


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, stdout) of a command run in a child process of its own."""
    run = _measured(cmd, env)
    return run.seconds, run.peak_mb, run.stdout


def _dataset(events: int, start: str = "2026-11-20", seed: int = 1) -> Path:
    target = OUT / (f"input-{events}" if start == "2026-11-20" else f"input-{events}-{start}")
    if not (target / "truth.json").exists():
        shutil.rmtree(target, ignore_errors=True)
        print(f"generating {events:,} events into {target} (once) …", flush=True)
        subprocess.run(
            [
                PY,
                "-m",
                "advertisex.cli.app",
                "generate",
                "--out",
                str(target),
                "--events",
                str(events),
                "--seed",
                str(seed),
                "--start",
                start,
                "--demo-faults",
                "--format",
                "json",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return target


def process_without_marts(events: int, lake: Path) -> None:
    """The ``events``-event set (:func:`_dataset`) ingested and processed into the data
    directory ``lake``, the marts left out: a lake for a benchmark of one step after it."""
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(lake))
    env["ADVERTISEX_CORRELATION__UPDATE_MARTS"] = "false"
    source = _dataset(events)
    for verb in (["ingest", str(source)], ["process"]):
        subprocess.run(
            [PY, "-m", "advertisex.cli.app", *verb, "--format", "json"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=positive, default=2_000_000)
    parser.add_argument(
        "--reference", action="store_true", help="also run ../shared/reference-bench jobs"
    )
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument(
        "--exact-memory",
        action="store_true",
        help="read every process's proportional size every 0.1 s: the exact peak of the "
        "process tree, at ≈ 7 %% of the run's speed (without it: read at the tree's "
        "resident highs only)",
    )
    parser.add_argument(
        "--with-marts",
        action="store_true",
        help="also bring the correlation marts up to date (issue 5)",
    )
    parser.add_argument(
        "--no-ivt", action="store_true", help="turn the invalid-traffic filter off (its cost)"
    )
    parser.add_argument(
        "--onto-existing",
        type=positive,
        metavar="EVENTS",
        help="process the set into a lake that holds the day before already (EVENTS events "
        "of it, processed first and not timed, the marts too): a daily batch's run, whose "
        "marts are updated, not built",
    )
    parser.add_argument(
        "--repeat",
        type=positive,
        default=1,
        help="rounds, each a new lake (and the reference jobs right after it): this host's "
        "speed drifts within the hour, so a ratio is taken within a round",
    )
    args = parser.parse_args()
    use_this_checkout()  # not the checkout the virtualenv installed (bench/_checkout.py)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    source = _dataset(args.events)
    ratios: dict[str, list[float]] = {}
    for round_ in range(args.repeat):
        if args.repeat > 1:
            print(f"\n— round {round_ + 1} of {args.repeat}")
        for script, ratio in _round(args, source).items():
            ratios.setdefault(script, []).append(ratio)
    if args.repeat > 1:
        for script, values in ratios.items():
            print(
                f"AdvertiseX / {script}, round by round: "
                + ", ".join(f"{v:.2f}×" for v in values)
                + f"  (median {statistics.median(values):.2f}×)"
            )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _round(args: argparse.Namespace, source: Path) -> dict[str, float]:
    """One ingest + process on a new lake (and the reference jobs right after it, when
    asked), printed; AdvertiseX's events/s over each reference job's."""
    work = Path(tempfile.mkdtemp(prefix="adx-bench-"))
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(work / "data"))
    env["ADVERTISEX_CORRELATION__UPDATE_MARTS"] = "true" if args.with_marts else "false"
    env["ADVERTISEX_PROCESSOR__IVT_FILTER"] = "false" if args.no_ivt else "true"
    if args.onto_existing:
        earlier = _dataset(args.onto_existing, start="2026-11-19", seed=2)
        for verb in (["ingest", str(earlier)], ["process"]):
            cli = [PY, "-m", "advertisex.cli.app", *verb, "--format", "json"]
            subprocess.run(cli, env=env, check=True, stdout=subprocess.DEVNULL)
    ingest = _measured(
        [PY, "-m", "advertisex.cli.app", "ingest", str(source), "--format", "json"], env=env
    )
    process = _measured(
        [PY, "-m", "advertisex.cli.app", "process", "--format", "json"],
        env=env,
        exact_memory=args.exact_memory,
    )
    from advertisex.util import jsonutil

    report = jsonutil.loads(process.stdout)
    ratios: dict[str, float] = {}
    n = sum(s["records_in"] for s in report["sources"])
    ingest_s, process_s = ingest.seconds, process.seconds
    total = ingest_s + process_s
    rate = n / total
    print(
        f"\nAdvertiseX  {n:,} records  ingest {ingest_s:.2f} s + process {process_s:.2f} s = {total:.2f} s"
        f"  → {rate:,.0f} events/s   (process alone {n / process_s:,.0f}/s)"
    )
    print(
        f"            CPU ingest {ingest.cpu_s:.1f} s + process {process.cpu_s:.1f} s (every process"
        f" and thread; on a busy machine the better guide)   peak RSS of process"
        f" {process.peak_mb:,.0f} MiB, with its decoder workers {process.tree_peak_mb:,.0f} MiB"
    )
    # 300 k/s needs less work and no idle core (docs/benchmarks.md): the machine's idle time
    # while process ran says how far the second is.
    print(f"            process: {process.idle_line()}")
    marts_s = report.get("marts_seconds") or 0.0
    if report.get("marts"):  # the marts are brought up to date last, after the batches
        last = marts_s + 1.0  # and the process's exit
        print(
            f"            the tree's peak in the marts' {report['marts']} ({marts_s:.1f} s at the end)"
            f" {process.tree_peak_since(last):,.0f} MiB; before it"
            f" {process.tree_peak_before(last):,.0f} MiB"
        )
    print(
        f"targets     {rate:,.0f} / {TARGET_RATE:,} events/s → {rate / TARGET_RATE:.2f}× the target;"
        f"  peak {process.tree_peak_mb:,.0f} / {TARGET_PEAK_MIB:,} MiB → "
        f"{process.tree_peak_mb / TARGET_PEAK_MIB:.2f}× the ceiling"
    )

    if not args.skip_pandas:
        pandas_s, pandas_mb, _ = _timed(
            [PY, str(HERE / "pandas_baseline.py"), str(source), str(work / "pandas")]
        )
        print(
            f"pandas      {n:,} records  {pandas_s:.2f} s  → {n / pandas_s:,.0f} events/s   peak RSS {pandas_mb:,.0f} MiB"
        )
        print(f"ratio       AdvertiseX is {pandas_s / total:.1f}× the pandas baseline's throughput")

    if args.reference:
        ref_input = OUT / "reference-impressions-2000000.ndjson"
        if not ref_input.exists():
            _timed([PY, str(REFERENCE / "make_impressions.py"), "2000000", str(ref_input)])
        for script in ("batch_duckdb.py", "batch_polars.py"):
            ref = _measured([PY, str(REFERENCE / script), str(ref_input), str(work / script)])
            ratios[script] = rate / (2e6 / ref.seconds)
            print(
                f"reference   {script:<16} 2,000,000 impressions  {ref.seconds:.2f} s  → {2e6 / ref.seconds:,.0f} events/s"
                f"   CPU {ref.cpu_s:.1f} s   peak RSS {ref.peak_mb:,.0f} MiB"
                f"   AdvertiseX / reference = {rate / (2e6 / ref.seconds):.2f}×"
                + ("  (target ≥ 0.5×)" if script == "batch_duckdb.py" else "")
            )
    shutil.rmtree(work, ignore_errors=True)
    return ratios


if __name__ == "__main__":
    main()
