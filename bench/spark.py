"""Spark runner vs. embedded runner on the same 2 M events; 1 → 2 core scaling; cluster size.

    python bench/spark.py [--events 2000000] [--runs embedded,local[1],local[2]] [--reference]

With ``--reference`` the bare Spark job of ../shared/reference-bench (``batch_spark.py``:
2 M impressions, NDJSON → epoch-ms timestamp → dedupe by id → day-partitioned Parquet,
``local[2]``) runs in the same session, and the Spark runner's ``local[2]`` rate is
printed beside it with the ratio (issue 14's target: ≥ 0.9×). Both rates leave the JVM
start-up out: the bare job times its job alone, the runner its processing alone.

The dataset is bench/process.py's (bench/out/input-<events>, generated once). It is
ingested once; every run gets its own catalog and warehouse over that same landing
zone (a symlink), so each processes exactly the same segments in the same batches.
Each run is its own process. Processing (landing → curated tables, committed) is
timed with the marts off; then the marts are rebuilt from those curated tables, timed
apart — correlation by user, bids by auction, rollups by campaign, on the same engine
(``--no-marts`` skips it).

For Spark, session start-up (JVM, executors) is timed apart from processing:
per-core throughput is processing alone, the figure a long-running cluster sees.
The estimate for 1 M events/s divides the target rate by the measured per-core rate
of local[2] and adds nothing for the driver, the catalog commit or network shuffle:
read it as a lower bound on cores.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _args import positive, spark_runs

from advertisex.util import jsonutil

HERE = Path(__file__).resolve().parent
PY = sys.executable
sys.path.insert(0, str(HERE))

TARGET = 1_000_000  # events/s
_WORK = ("stage 1", "stage 2", "stage 3", "commit", "job")  # CPU spans of the work itself
SPARK_CONF = {"spark.driver.memory": "8g", "spark.sql.shuffle.partitions": "8"}


def run_one(engine: str, data: Path, marts: bool) -> None:
    """In a child process: process ``data`` with one engine, print timings as JSON."""
    import advertisex

    ax = advertisex.open(
        data_dir=data, correlation={"update_marts": False}, scale={"spark_conf": SPARK_CONF}
    )
    from _treecpu import TreeCpu

    from advertisex.marts.iceberg import rebuild_marts

    cpu = TreeCpu(os.getpid()).start()
    started = time.perf_counter()
    startup = 0.0
    if engine == "embedded":
        runner = ax.runner
    else:
        from advertisex.runners.spark import SparkRunner, spark_session

        session = spark_session(ax.settings, engine)
        session.range(1).count()  # executors up
        startup = time.perf_counter() - started
        runner = SparkRunner(ax.settings, ax.lake, ax.landing, session=session)
    cpu.mark("start-up")
    report = runner.process(_stage_marks(cpu))
    total = time.perf_counter() - started
    cpu.mark("commit")
    mart_seconds, attributed = 0.0, 0
    if marts:
        begun = time.perf_counter()
        done = rebuild_marts(ax.lake, ax.settings, runner.mart_kernels())
        mart_seconds, attributed = time.perf_counter() - begun, done.clicks + done.conversions
    if engine != "embedded":
        session.stop()
    cpu.stop()
    print(
        jsonutil.dumps_str(
            {
                "engine": engine,
                "records": report.records_in,
                "batches": len(report.batches),
                "startup": startup,
                "process": total - startup,
                "accepted": sum(a.accepted for a in report.accounts.values()),
                "duplicates": sum(a.duplicates for a in report.accounts.values()),
                "marts": mart_seconds,
                "attributed": attributed,
                "cpu": cpu.spans(),
            }
        )
    )


def _stage_marks(cpu: Any) -> Callable[[str, int, int], None]:
    """A progress callback closing a CPU span as each stage of a batch ends (stage 1 is
    "read", stage 2 "dedupe", stage 3 ends as the driver starts the "commit")."""

    def progress(stage: str, done: int, total: int) -> None:
        if done == total and stage in ("read", "dedupe", "commit"):
            cpu.mark({"read": "stage 1", "dedupe": "stage 2", "commit": "stage 3"}[stage])

    return progress


def _run(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return jsonutil.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=positive, default=2_000_000)
    parser.add_argument("--runs", type=spark_runs, default="embedded,local[1],local[2]")
    parser.add_argument("--no-marts", action="store_true", help="skip the mart rebuild")
    parser.add_argument(
        "--reference", action="store_true", help="also run the bare Spark job (batch_spark.py)"
    )
    parser.add_argument("--one", nargs=2, metavar=("ENGINE", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.one[0], Path(args.one[1]), not args.no_marts)
        return
    from process import OUT, REFERENCE, _dataset  # bench/process.py's generated input

    source = _dataset(args.events)
    work = Path(tempfile.mkdtemp(prefix="adx-bench-spark-"))
    (work / "none.toml").touch()  # an empty config file: nothing from the working directory
    env = dict(os.environ, ADVERTISEX_CONFIG=str(work / "none.toml"), PYSPARK_PYTHON=PY)
    base = work / "base"
    subprocess.run(
        [PY, "-m", "advertisex.cli.app", "ingest", str(source), "--format", "json"],
        env=dict(env, ADVERTISEX_DATA_DIR=str(base)),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    results = {}
    for engine in args.runs.split(","):
        data = work / engine.replace("[", "-").replace("]", "")
        data.mkdir()
        (data / "landing").symlink_to(base / "landing")
        marts = ["--no-marts"] if args.no_marts else []
        out = _run([PY, __file__, "--one", engine, str(data), *marts], env)
        results[engine] = out
        rate = out["records"] / out["process"]
        print(
            f"{engine:<9} {out['records']:>10,.0f} records in {out['batches']:.0f} batch(es): "
            f"start-up {out['startup']:6.1f} s, process {out['process']:7.1f} s "
            f"→ {rate:>9,.0f} events/s"
            + (
                f"; marts rebuild {out['marts']:6.1f} s ({out['attributed']:,.0f} clicks and "
                "conversions attributed)"
                if out["marts"]
                else ""
            ),
            flush=True,
        )
        for span, kinds in out["cpu"].items():
            print(f"          {span:<9} {_cpu_text(kinds)}")
    if args.reference:
        ref_input = OUT / "reference-impressions-2000000.ndjson"
        if not ref_input.exists():
            subprocess.run(
                [PY, str(REFERENCE / "make_impressions.py"), "2000000", str(ref_input)], check=True
            )
        results["reference"] = _reference(ref_input, work / "reference", env)
    _summary(results)
    print(f"machine: load average {os.getloadavg()[0]:.1f} at the end")
    shutil.rmtree(work, ignore_errors=True)


def _reference(source: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """The bare Spark job on 2 M impressions: records, job seconds without start-up, and
    the CPU seconds of its process tree over the job (from the printed job time back)."""
    from _treecpu import TreeCpu
    from process import REFERENCE

    script = REFERENCE / "batch_spark.py"
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(
            [PY, str(script), str(source), str(out)],
            env=dict(env, PYTHONUNBUFFERED="1"),  # its line as the job ends, not at exit
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        cpu = TreeCpu(child.pid).start()
        printed, stdout = None, []
        assert child.stdout is not None
        for line in child.stdout:
            stdout.append(line)
            if printed is None and line.startswith("spark job "):
                printed = time.monotonic()
                cpu.mark("job")
        child.wait()
        cpu.stop()
        errors.seek(0)
        stderr = errors.read()
    timing = re.search(r"spark job ([0-9.]+) s, with start-up ([0-9.]+) s", "".join(stdout))
    if child.returncode != 0 or timing is None or printed is None:
        sys.exit(f"{script} failed:\n{''.join(stdout)[-1000:]}{stderr[-3000:]}")
    job, whole = float(timing[1]), float(timing[2])
    began, ended = cpu.at(printed - job), cpu.marks[-1][1]
    job_cpu = {kind: round(ended[kind] - began[kind], 2) for kind in ended}
    rate = 2_000_000 / job
    print(
        f"reference {2_000_000:>10,} impressions (batch_spark.py, local[2]): start-up "
        f"{whole - job:6.1f} s, job {job:7.1f} s → {rate:>9,.0f} events/s; "
        f"{_cpu_text(job_cpu)}",
        flush=True,
    )
    return {"records": 2_000_000, "process": job, "cpu": {"job": job_cpu}}


def _cpu_text(kinds: dict[str, float]) -> str:
    cpu = kinds["jvm"] + kinds["workers"] + kinds["driver"]
    wall = f", wall {kinds['wall']:5.1f} s" if "wall" in kinds else ""
    return (
        f"CPU {cpu:5.1f} s (JVM {kinds['jvm']:.1f}, Python workers "
        f"{kinds['workers']:.1f}, driver {kinds['driver']:.1f}){wall}"
    )


def _summary(results: dict[str, dict[str, Any]]) -> None:
    def rate(engine: str) -> float:
        return results[engine]["records"] / results[engine]["process"]

    def cpu_per_event(engine: str) -> float:
        spans = results[engine]["cpu"]
        seconds = sum(
            kinds["jvm"] + kinds["workers"] + kinds["driver"]
            for span, kinds in spans.items()
            if span in _WORK
        )
        return seconds / results[engine]["records"]

    if "embedded" in results and "local[2]" in results:
        print(
            f"ratio     Spark local[2] / embedded throughput: {rate('local[2]') / rate('embedded'):.2f}"
        )
    if "reference" in results and "local[2]" in results:
        print(
            f"ratio     Spark local[2] / bare Spark job: {rate('local[2]') / rate('reference'):.2f}× "
            "(target ≥ 0.90×)"
        )
        print(
            f"ratio     CPU seconds per event, bare Spark job / Spark local[2]: "
            f"{cpu_per_event('reference') / cpu_per_event('local[2]'):.2f}× "
            "(over the work alone: start-up left out)"
        )
    if "local[1]" in results and "local[2]" in results:
        speedup = rate("local[2]") / rate("local[1]")
        print(f"scaling   local[1] → local[2]: {speedup:.2f}× (ideal 2.00×)")
    cores_from = "local[2]" if "local[2]" in results else "local[1]"
    if cores_from in results:
        per_core = rate(cores_from) / (2 if cores_from == "local[2]" else 1)
        cores = math.ceil(TARGET / per_core)
        print(
            f"estimate  {per_core:,.0f} events/s per core on {cores_from} → 1,000,000 events/s needs "
            f"≥ {cores:,} executor cores (e.g. {math.ceil(cores / 16)} executors × 16 cores), "
            "before driver, commit and network costs"
        )


if __name__ == "__main__":
    main()
