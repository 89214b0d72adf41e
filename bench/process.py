"""Batch pipeline throughput: generate N mixed events once, then time ingest + process.

Prints AdvertiseX's events/s and peak memory beside a straightforward pandas
implementation of the same steps (bench/pandas_baseline.py) and, when asked, the
reference ceilings of ../shared/reference-bench (bare DuckDB / Polars jobs on
impressions alone), all run in this session on this machine.

    python bench/process.py [--events 2000000] [--reference]

Each measured job runs in its own process so peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, stdout) of a command run in a child process of its own."""
    with tempfile.NamedTemporaryFile(suffix=".peak") as peak_file:
        wrapped = [cmd[0], str(HERE / "_peak.py"), peak_file.name, *cmd[1:]]
        started = time.perf_counter()
        result = subprocess.run(wrapped, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
        peak = float(Path(peak_file.name).read_text() or 0)
    return seconds, peak, result.stdout


def _dataset(events: int) -> Path:
    target = OUT / f"input-{events}"
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
                "1",
                "--start",
                "2026-11-20",
                "--demo-faults",
                "--format",
                "json",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument(
        "--reference", action="store_true", help="also run ../shared/reference-bench jobs"
    )
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument(
        "--with-marts",
        action="store_true",
        help="also bring the correlation marts up to date (issue 5)",
    )
    parser.add_argument(
        "--no-ivt", action="store_true", help="turn the invalid-traffic filter off (its cost)"
    )
    args = parser.parse_args()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    source = _dataset(args.events)
    work = Path(tempfile.mkdtemp(prefix="adx-bench-"))
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(work / "data"))
    env["ADVERTISEX_CORRELATION__UPDATE_MARTS"] = "true" if args.with_marts else "false"
    env["ADVERTISEX_PROCESSOR__IVT_FILTER"] = "false" if args.no_ivt else "true"
    ingest_s, _, _ = _timed(
        [PY, "-m", "advertisex.cli.app", "ingest", str(source), "--format", "json"], env=env
    )
    process_s, process_mb, out = _timed(
        [PY, "-m", "advertisex.cli.app", "process", "--format", "json"], env=env
    )
    from advertisex.util import jsonutil

    report = jsonutil.loads(out)
    n = sum(s["records_in"] for s in report["sources"])
    total = ingest_s + process_s
    rate = n / total
    print(
        f"\nAdvertiseX  {n:,} records  ingest {ingest_s:.2f} s + process {process_s:.2f} s = {total:.2f} s"
        f"  → {rate:,.0f} events/s   (process alone {n / process_s:,.0f}/s)   peak RSS {process_mb:,.0f} MiB"
    )
    print(
        f"targets     {rate:,.0f} / {TARGET_RATE:,} events/s → {rate / TARGET_RATE:.2f}× the target;"
        f"  peak {process_mb:,.0f} / {TARGET_PEAK_MIB:,} MiB → {process_mb / TARGET_PEAK_MIB:.2f}× the ceiling"
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
            seconds, mb, _ = _timed(
                [PY, str(REFERENCE / script), str(ref_input), str(work / script)]
            )
            print(
                f"reference   {script:<16} 2,000,000 impressions  {seconds:.2f} s  → {2e6 / seconds:,.0f} events/s"
                f"   peak RSS {mb:,.0f} MiB   AdvertiseX / reference = {rate / (2e6 / seconds):.2f}×"
                + ("  (target ≥ 0.5×)" if script == "batch_duckdb.py" else "")
            )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
