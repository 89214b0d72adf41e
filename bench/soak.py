"""Soak: a long run simulated quickly — thousands of micro-batch commits, maintenance on/off.

Each commit is what ``process --follow`` does with one collector flush: a tick of live
synthetic traffic (about ``--events-per-commit`` impressions, bid requests, clicks and
conversions, stamped now) lands as three segments and the embedded runner processes
them. With maintenance *on*, manifests merge as commits append and maintenance runs
every ``--maintain-every`` commits (as the follower's schedule would); *off* is how the
lake behaved before (fast appends, nothing ever cleaned up, no snapshot thinned as commits
go). The marts are brought up to date every ``--marts-every`` commits (a follower does it
every ``correlation.follow_marts_every_seconds``, 60, and maintenance keeps every snapshot
from their position on), timed apart from the commits.

At every checkpoint it prints: commit time p50/p99 of the commits since the previous
checkpoint (wall clock, and CPU time of the process — what the commit costs, whatever
else shares the machine; the first commit, which creates every table, is printed apart
and not counted), the latency of a count over curated.impressions and of
``report campaigns`` (each through a freshly opened platform, as a CLI call would, minus
Python start-up; the median of ``--query-repeats`` runs), where the checkpoint falls in the
maintenance cycle (commits since the last run: the data files grow until it), the longest maintenance run (here between commits, timed apart from
them; a follower runs it beside its batches), data files, manifests and metadata bytes
over all tables, and the most snapshots one table keeps (time travel's window: each
commit rewrites a metadata.json that lists them). Last, the ratio of the last checkpoint to the first — the goal with
maintenance on is ≤ 1.5× for commit p99 and query latency, with data files bounded.

    python bench/soak.py [--commits 20000] [--checkpoints 100,1000,10000,20000]
                         [--events-per-commit 500] [--maintain-every 300] [--mode both]
                         [--marts-every 60] [--query-repeats 5]

Smaller runs work the same (``--commits 1000 --checkpoints 100,500,1000``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _args import positive, whole


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _median_of(times: int, action: Any) -> float:
    return statistics.median(_timed(action) for _ in range(times))


def _costs(action: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``action``: on a shared machine the
    CPU time says what the work costs, the wall time what it waited too."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def _memory() -> dict[str, int]:
    """What this process (the runner's) holds: resident MiB, Arrow's allocations in MiB,
    and Python's tracked objects — a follower runs for months, so none may grow with the
    commits beyond what the dedupe horizon's keys need (16 bytes a key)."""
    import gc

    import pyarrow as pa

    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return {
        "rss_mib": pages * os.sysconf("SC_PAGE_SIZE") >> 20,
        "arrow_mib": pa.total_allocated_bytes() >> 20,
        "py_objects": len(gc.get_objects()),
    }


def _shape(data: Path) -> dict[str, int]:
    """Data files and manifests of every table's current snapshot, the most snapshots a
    table keeps (what each commit's metadata.json lists), bytes of metadata."""
    import advertisex
    from advertisex.lake.history import live_files
    from advertisex.lake.upkeep import existing_tables

    lake = advertisex.open(data_dir=data).lake
    files = manifests = snapshots = 0
    for name in existing_tables(lake):
        table = lake.table(name)
        current = table.current_snapshot()
        files += len(live_files(table))
        manifests += len(current.manifests(table.io)) if current else 0
        snapshots = max(snapshots, len(table.metadata.snapshots))
    metadata = sum(
        p.stat().st_size for p in (data / "warehouse").rglob("*") if p.parent.name == "metadata"
    )
    return {
        "data_files": files,
        "manifests": manifests,
        "snapshots_max": snapshots,
        "metadata_bytes": metadata,
    }


def soak(
    mode: str,
    commits: int,
    checkpoints: list[int],
    per_commit: int,
    maintain_every: int,
    marts_every: int = 60,
    query_repeats: int = 5,
) -> list[dict[str, Any]]:
    import advertisex
    from advertisex.synth.stream import LiveTraffic, bids_avro, clicks_csv, ndjson

    data = Path(tempfile.mkdtemp(prefix=f"soak-{mode}-")) / "data"
    on = mode == "on"
    settings = {
        "correlation": {"update_marts": False},  # the marts are refreshed at checkpoints
        "maintenance": {
            "manifest_merge": on,
            "schedule": False,
            **({} if on else {"expire_every_commits": 0}),
        },
    }
    ax = advertisex.open(data_dir=data, **settings)
    ax.create_data_dir()
    runner, landing = ax.runner, ax.landing
    traffic = LiveTraffic(seed=7)
    impressions = max(1, round(per_commit / 1.9))  # + bids, lost auctions, responses
    rows, times, cpus, upkeep, events = [], [], [], [0.0], 0
    try:
        for n in range(1, commits + 1):
            tick = traffic.tick(impressions)
            events += tick.events
            landing.write_segment("impressions", ndjson(tick.impressions), fsync=False)
            if tick.clicks:
                landing.write_segment("clicks", clicks_csv(tick.clicks), fsync=False)
            landing.write_segment("bids", bids_avro(tick.bids), fsync=False)
            wall, cpu = _costs(runner.process)
            if n == 1:  # creates every table, starts the decoder workers: once per lake
                print(f"first commit: {wall:.3f} s, {cpu:.3f} s CPU (not counted)", flush=True)
            else:
                times.append(wall)
                cpus.append(cpu)
            if marts_every and n % marts_every == 0 and n not in checkpoints:
                ax.refresh_marts()  # as a follower would, apart from the commits
            if on and n % maintain_every == 0:  # timed apart from the commits
                upkeep.append(_timed(lambda: ax.maintain(trigger="schedule")))
            if n in checkpoints:
                held = _memory()  # the runner's own, before the checkpoint opens others
                fresh = advertisex.open(data_dir=data, **settings)
                fresh.refresh_marts()
                # Each query through a freshly opened platform, the median of a few: one
                # sample of a 0.1 s query moved by ×1.6 between checkpoints on its own.
                count = _median_of(
                    query_repeats,
                    lambda: advertisex.open(data_dir=data, **settings).query(
                        "select count(*) from curated.impressions"
                    ),
                )
                report = _median_of(
                    query_repeats,
                    lambda: advertisex.open(data_dir=data, **settings).report_campaigns(),
                )
                row = {
                    "mode": mode,
                    "commits": n,
                    "events": events,
                    "commit_p50_s": round(statistics.median(times), 3),
                    "commit_p99_s": round(_percentile(times, 0.99), 3),
                    "commit_cpu_p50_s": round(statistics.median(cpus), 3),
                    "commit_cpu_p99_s": round(_percentile(cpus, 0.99), 3),
                    "count_s": round(count, 3),
                    "report_s": round(report, 3),
                    "maintain_max_s": round(max(upkeep), 3),
                    # where the checkpoint falls in the maintenance cycle: the data files
                    # (and a count's latency) grow with the commits since the last run
                    "since_maintain": n % maintain_every if on else n,
                    **_shape(data),
                    **held,
                }
                rows.append(row)
                print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                times, cpus, upkeep = [], [], [0.0]
    finally:  # an interrupted run leaves no lake behind either
        shutil.rmtree(data.parent, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=positive, default=20_000)
    parser.add_argument("--checkpoints", default="100,1000,10000,20000")
    parser.add_argument("--events-per-commit", type=positive, default=500)
    parser.add_argument("--maintain-every", type=positive, default=300)
    parser.add_argument("--mode", choices=("on", "off", "both"), default="both")
    parser.add_argument(
        "--marts-every", type=whole, default=60, help="commits between marts updates (0: never)"
    )
    parser.add_argument(
        "--query-repeats",
        type=positive,
        default=5,
        help="runs of each query at a checkpoint (median)",
    )
    args = parser.parse_args()
    checkpoints = sorted(c for c in map(int, args.checkpoints.split(",")) if 1 < c <= args.commits)
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} cores)")
    results: dict[str, list[dict[str, Any]]] = {}
    for mode in ("on", "off") if args.mode == "both" else (args.mode,):
        print(f"maintenance {mode}:")
        results[mode] = soak(
            mode,
            args.commits,
            checkpoints,
            args.events_per_commit,
            args.maintain_every,
            args.marts_every,
            args.query_repeats,
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    for mode, rows in results.items():
        first, last = rows[0], rows[-1]
        ratios = {
            k: round(last[k] / first[k], 2) if first[k] else None
            for k in ("commit_p99_s", "commit_cpu_p99_s", "count_s", "report_s", "data_files")
        }
        print(
            f"maintenance {mode}: {last['commits']:,} vs {first['commits']:,} commits: "
            + ", ".join(f"{k} ×{v}" for k, v in ratios.items())
            + " (goal with maintenance on: commit p99 and queries ≤ ×1.5, files bounded)"
        )


if __name__ == "__main__":
    main()
