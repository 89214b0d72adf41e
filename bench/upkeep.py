"""``maintain`` and ``forget`` on a big lake: how long the upkeep of a large day takes.

Builds a lake of ``--events`` mixed events — the dataset of bench/process.py (generated
once, cached under bench/out), processed in ``--batches`` batches so each table holds the
small files a day of batches leaves — then times, in child processes of their own (peak
memory is theirs):

* ``advertisex maintain`` — compaction of every partition, snapshot expiry, orphans;
* ``advertisex forget --user-id U`` for a typical user (the median number of
  impressions: what most erasure requests are), then for the user with the most (the
  generator's activity is heavy-tailed: that one is in every file of every table).

Each line gives the wall time, the CPU seconds of the command's process tree (which the
machine's load does not inflate), its peak memory and the load average around it.

    python bench/upkeep.py [--events 10000000] [--batches 100] [--maintain-only]
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

from _args import positive

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from process import OUT, PY, _dataset, _measured  # noqa: E402

from advertisex.util import jsonutil  # noqa: E402


def _cli(data: Path, *args: str) -> list[str]:
    return [PY, "-m", "advertisex.cli.app", *args]


def _env(data: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ, ADVERTISEX_DATA_DIR=str(data), COLUMNS="200", **extra)


def _lake(data: Path, events: int, batches: int) -> None:
    """Ingest the dataset and process it in ``batches`` batches (an Iceberg lake names its
    files by absolute path, so it is built where it is measured, not copied)."""
    source = _dataset(events)
    print(f"building a lake of {events:,} events in {batches} batches …", flush=True)
    subprocess.run(
        _cli(data, "ingest", *(str(source / s) for s in ("impressions", "clicks", "bids"))),
        env=_env(data),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    landed = sum(p.stat().st_size for p in (data / "landing").rglob("*") if p.is_file())
    subprocess.run(
        _cli(data, "process", "--format", "json"),
        env=_env(
            data,
            ADVERTISEX_PROCESSOR__BATCH_MAX_BYTES=str(max(1, landed // batches)),
            ADVERTISEX_MAINTENANCE__SCHEDULE="false",
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _query(data: Path, sql: str) -> list[dict[str, object]]:
    done = subprocess.run(
        _cli(data, "query", sql, "--format", "json"),
        env=_env(data),
        check=True,
        capture_output=True,
        text=True,
    )
    return list(jsonutil.loads(done.stdout))


def _forget(data: Path, user: str, who: str) -> None:
    load = os.getloadavg()[0]
    run = _measured(_cli(data, "forget", "--user-id", user, "--format", "json"), _env(data))
    done = jsonutil.loads(run.stdout)
    print(
        f"forget {who} {user} ({sum(done['rows_removed'].values()):,} rows and records, "
        f"{done['landing_files_rewritten']:,} landing files rewritten): {run.seconds:.1f} s, "
        f"CPU {run.cpu_s:.1f} s, peak {run.peak_mb:,.0f} MiB "
        f"(load {load:.2f} before, {os.getloadavg()[0]:.2f} after)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=positive, default=10_000_000)
    parser.add_argument("--batches", type=positive, default=100)
    parser.add_argument(
        "--maintain-only", action="store_true", help="time maintain, not the erasures after it"
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="upkeep-bench-", dir=OUT))
    try:
        data = work / "data"
        started = time.perf_counter()
        _lake(data, args.events, args.batches)
        print(f"lake built in {time.perf_counter() - started:.0f} s", flush=True)
        load = os.getloadavg()[0]
        run = _measured(_cli(data, "maintain", "--format", "json"), _env(data))
        report = jsonutil.loads(run.stdout)
        before = sum(t["data_files_before"] for t in report["tables"])
        after = sum(t["data_files_after"] for t in report["tables"])
        print(
            f"maintain, {args.events:,} events in {args.batches} batches: {run.seconds:.1f} s, "
            f"CPU {run.cpu_s:.1f} s, peak {run.peak_mb:,.0f} MiB; data files {before:,} → "
            f"{after:,}, {sum(t['files_compacted'] for t in report['tables']):,} compacted, "
            f"{sum(t['snapshots_expired'] for t in report['tables']):,} snapshots expired "
            f"(load {load:.2f} before, {os.getloadavg()[0]:.2f} after)",
            flush=True,
        )
        if args.maintain_only:
            return
        counts = "select user_id, count(*) n from curated.impressions group by 1"
        (typical,) = _query(
            data,
            f"with c as ({counts}) select user_id, n from c "
            "where n = (select quantile_disc(n, 0.5) from c) order by user_id limit 1",
        )
        (heaviest,) = _query(data, f"{counts} order by n desc, user_id limit 1")
        _forget(data, str(typical["user_id"]), f"a typical user ({typical['n']} impressions)")
        _forget(data, str(heaviest["user_id"]), f"the busiest user ({heaviest['n']:,} impressions)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
