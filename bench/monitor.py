"""Monitor figures: detection delay per fault, false positives over clean weeks, cost at scale.

    python bench/monitor.py [--impressions 100000000] [--hours 24] [--weeks 3]
                            [--step-minutes 1] [--keep DIR] [--skip-drills] [--skip-scale]

1. Detection delay: each scenario of ``advertisex.synth.drill`` injects its fault at T
   (after a week of clean simulated history) and evaluates every ``--step-minutes``;
   the delay is T → first delivered notification of the expected alert, in simulated
   time (plus one run with the webhook channel down for 45 minutes).
2. False positives: firing alerts over ``--weeks`` clean simulated weeks (different
   seeds, evaluated every 5 minutes, each after a week of history).
3. Cost per evaluation: a day of curated tables with ``--impressions`` impressions (plus
   1 % clicks, 0.1 % conversions and a bid request per programmatic impression) is
   written through the lake in 96 quarter-hour batches, then the real gatherer and
   monitors run on it: the first evaluation (which reads the whole day) and the steady
   state (only the unsettled last hour is read again).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from _args import positive, positive_number

from advertisex.config import ChannelSettings, MonitorSettings
from advertisex.monitor.model import HOUR
from advertisex.monitor.notify.simple import MemoryNotifier
from advertisex.synth.drill import SCENARIOS, drill, inject
from advertisex.synth.monitor_sim import Simulation

START = datetime(2026, 11, 1, tzinfo=UTC)
T = START + timedelta(days=8, hours=10)


def memory_settings() -> MonitorSettings:
    names = ("memory",)
    return MonitorSettings(
        routes={"critical": names, "warning": names, "info": names},
        channels={"memory": ChannelSettings(kind="memory")},
    )


def detection_delays(step: timedelta) -> None:
    print(f"\n## Detection delay (fault at T, evaluation every {step.total_seconds() / 60:g} min)")
    print(f"{'scenario':34} {'alert':22} {'fault → notification':>22}")
    for name in SCENARIOS:
        sim = Simulation(START, days=10, seed=11)
        expected = inject(sim, name, T)
        result = drill(
            sim,
            memory_settings(),
            T - HOUR,
            T + 3 * HOUR,
            step,
            {"memory": MemoryNotifier("memory")},
        )
        delay = result.delay(expected, T)
        print(f"{name:34} {expected:22} {_minutes(delay):>22}")
    down = MemoryNotifier("memory")
    back = T + timedelta(minutes=45)
    cfg = memory_settings().model_copy(update={"retry_base_seconds": 30, "retry_max_seconds": 120})
    sim = Simulation(START, days=10, seed=11)
    inject(sim, "source stops", T)

    def outage(now: datetime) -> None:
        down.fail_next = 1 if now < back else 0

    result = drill(sim, cfg, T - HOUR, T + 2 * HOUR, step, {"memory": down}, between=outage)
    print(
        f"{'source stops, webhook down 45 min':34} {'SourceStale':22} "
        f"{_minutes(result.delay('SourceStale', T)):>22}  ({down.attempts} attempts)"
    )


def false_positives(weeks: int) -> None:
    print(f"\n## False positives over {weeks} clean simulated week(s), evaluated every 5 min")
    total = evaluations = 0
    started = time.perf_counter()
    for seed in range(weeks):
        sim = Simulation(START, days=14, seed=100 + seed)
        result = drill(
            sim,
            memory_settings(),
            START + timedelta(days=7),
            START + timedelta(days=14),
            timedelta(minutes=5),
            {"memory": MemoryNotifier("memory")},
        )
        total += result.firing_transitions
        evaluations += result.evaluations
        print(f"seed {100 + seed}: {result.firing_transitions} alerts fired {sorted(result.fired)}")
    seconds = time.perf_counter() - started
    print(
        f"total: {total} false positives in {evaluations:,} evaluations "
        f"({seconds:.1f} s of wall time, {seconds / evaluations * 1000:.1f} ms per evaluation)"
    )


def scale_cost(impressions: int, keep: Path | None = None, hours: int = 24) -> None:
    import advertisex
    from advertisex.monitor.checks import evaluate
    from advertisex.monitor.gather import Gatherer
    from advertisex.synth.monitor_sim import SimClock

    part = "" if hours == 24 else f" (its last {hours} hours written)"
    print(f"\n## Cost per evaluation on a day of {impressions:,} impressions{part}")
    day = datetime(2026, 11, 20, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="adx-monitor-bench-") as tmp:
        data = keep or Path(tmp) / "data"
        fresh = not (data / "catalog.db").exists()
        ax = advertisex.open(data_dir=data)
        if fresh:
            started = time.perf_counter()
            rows = write_day(ax.lake, day, impressions, hours)
            seconds = time.perf_counter() - started
            print(f"wrote {rows:,} curated rows through the lake in {seconds:.0f} s")
        clock = SimClock(day + timedelta(days=1, minutes=5))
        gatherer = Gatherer(ax.settings, ax.lake, clock)
        cfg = ax.settings.monitor
        steps = [
            (f"first evaluation (aggregates hours {24 - hours}-22)", timedelta(0)),
            ("a minute later (landing, catalog, ops.batches)", timedelta(minutes=1)),
            ("hour 23 complete (aggregates that hour once)", timedelta(minutes=10)),
            ("a minute later", timedelta(minutes=1)),
        ]
        for label, step in steps:
            clock.advance(step)
            t0 = time.perf_counter()
            obs = gatherer.observe()
            t1 = time.perf_counter()
            findings, errors = evaluate(obs, cfg)
            t2 = time.perf_counter()
            print(
                f"{label}: gather {t1 - t0:.2f} s + monitors {(t2 - t1) * 1000:.0f} ms "
                f"({len(findings)} findings, {len(errors)} errors)"
            )


def write_day(lake: object, day: datetime, impressions: int, hours: int = 24) -> int:
    """A day of curated rows, committed as 96 quarter-hour batches with their accounting;
    with ``hours`` < 24 only the day's last hours are written (at the same rate)."""
    from advertisex.lake.catalog import SegmentDone
    from advertisex.model.schemas import BATCHES, TABLES

    rng = np.random.default_rng(1)
    per_batch = impressions // 96
    written = 0
    weights = 1 / np.arange(1, 51) ** 0.8
    weights /= weights.sum()
    for b in range(96 - 4 * hours, 96):
        at = day + timedelta(minutes=15 * b)
        batch_id = f"bench-{b:03d}"
        imp = _impressions(rng, at, per_batch, b * per_batch, weights)
        clk = _clicks(rng, imp, max(per_batch // 100, 1))
        conv = _clicks(rng, clk, max(per_batch // 1000, 1))
        bids = _bids(imp)
        tables = {
            "curated.impressions": imp,
            "curated.clicks": clk,
            "curated.conversions": conv,
            "curated.bid_requests": bids,
        }
        appends = {
            name: _conform(t, TABLES[name].schema, at, batch_id) for name, t in tables.items()
        }
        sources = {
            "impressions": imp.num_rows,
            "clicks": clk.num_rows + conv.num_rows,
            "bids": bids.num_rows,
        }
        segments = {
            s: f"{s}/{at:%Y-%m-%d}/{at:%H}/{at:%Y%m%dT%H%M%S%fZ}-bench{b}.ndjson" for s in sources
        }
        appends["ops.batches"] = pa.Table.from_pylist(
            [
                {
                    "batch_id": batch_id,
                    "source": s,
                    "started_at": at + timedelta(seconds=30),
                    "committed_at": at + timedelta(seconds=60),
                    "files": 1,
                    "bytes": n * 300,
                    "records_in": n,
                    "accepted": n,
                    "quarantined": 0,
                    "filtered": 0,
                    "duplicates": 0,
                    "conflicts": 0,
                    "segments": [segments[s]],
                }
                for s, n in sources.items()
            ],
            schema=BATCHES,
        )
        marks = [
            SegmentDone(
                segments[s], s, batch_id, n, n * 300, (at + timedelta(seconds=60)).isoformat()
            )
            for s, n in sources.items()
        ]
        lake.commit_batch(appends, marks, {"advertisex.batch-id": batch_id})  # type: ignore[attr-defined]
        written += sum(t.num_rows for t in tables.values())
        if b % 12 == 11:
            print(f"  {b + 1}/96 batches", file=sys.stderr)
    return written


def _strings(prefix: str, values: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pa.array(values).cast(pa.string()), "")


def _impressions(
    rng: np.random.Generator, at: datetime, n: int, offset: int, weights: np.ndarray
) -> pa.Table:
    campaign = rng.choice(50, n, p=weights)
    ingest = at.timestamp() + rng.uniform(0, 900, n)
    event = ingest - rng.exponential(20, n)
    programmatic = rng.random(n) < 0.6
    ids = np.arange(offset, offset + n)
    return pa.table(
        {
            "impression_id": _strings("i-", ids),
            "event_time": _ts(event),
            "ingest_time": _ts(ingest),
            "campaign_id": _strings("cmp-", campaign),
            "ad_creative_id": _strings("cr-", campaign * 5 + ids % 5),
            "user_id": _strings("u-", rng.integers(0, 20_000_000, n)),
            "website": pa.array(np.full(n, "news.example"), pa.string()),
            "cost": rng.gamma(2.0, 0.001, n),
            "auction_id": pa.array(_strings("a-", ids), mask=~programmatic),
            "device_type": pa.array(np.where(ids % 3 == 0, "mobile", "desktop")),
        }
    )


def _clicks(rng: np.random.Generator, parents: pa.Table, n: int) -> pa.Table:
    pick = pa.array(rng.choice(parents.num_rows, n, replace=False))
    chosen = parents.take(pick)
    later = pc.cast(chosen.column("event_time"), pa.int64()).to_numpy() / 1e6 + rng.uniform(
        1, 60, n
    )
    id_column = "impression_id" if "impression_id" in chosen.column_names else "event_id"
    return pa.table(
        {
            "event_id": pc.binary_join_element_wise("e-", chosen.column(id_column), ""),
            "event_time": _ts(later),
            "ingest_time": chosen.column("ingest_time"),
            "user_id": chosen.column("user_id"),
            "campaign_id": chosen.column("campaign_id"),
            "impression_id": chosen.column("impression_id")
            if "impression_id" in chosen.column_names
            else pa.nulls(n, pa.string()),
        }
    )


def _bids(imp: pa.Table) -> pa.Table:
    won = imp.filter(pc.is_valid(imp.column("auction_id")))
    return pa.table(
        {
            "auction_id": won.column("auction_id"),
            "event_time": won.column("event_time"),
            "ingest_time": won.column("ingest_time"),
            "user_id": won.column("user_id"),
            "campaign_id": won.column("campaign_id"),
            "bid_price": pc.multiply(won.column("cost"), 1200.0),
        }
    )


def _conform(table: pa.Table, schema: pa.Schema, at: datetime, batch_id: str) -> pa.Table:
    """Fill the columns the bench does not vary (lineage, hashes, optional ones)."""
    n = table.num_rows
    fill = {
        "payload_hash": pa.array(np.full(n, "bench"), pa.string()),
        "source_file": pa.array(np.full(n, f"bench/{at:%H%M}"), pa.string()),
        "source_position": pa.array(np.arange(n)),
        "batch_id": pa.array(np.full(n, batch_id), pa.string()),
    }
    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        elif f.name in fill:
            columns.append(fill[f.name])
        else:
            columns.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array((seconds * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC"))


def _minutes(delay: timedelta | None) -> str:
    return "not detected" if delay is None else f"{delay.total_seconds() / 60:.0f} min"


def main() -> None:
    import logging

    logging.getLogger("advertisex.monitor").setLevel(logging.ERROR)  # retries are expected here
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--impressions", type=positive, default=100_000_000)
    parser.add_argument("--weeks", type=positive, default=3)
    parser.add_argument("--step-minutes", type=positive_number, default=1.0)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-drills", action="store_true", help="only the cost at scale")
    parser.add_argument("--keep", type=Path, help="write the scale data here (reused if present)")
    parser.add_argument(
        "--hours", type=positive, default=24, help="write only the day's last hours"
    )
    args = parser.parse_args()
    if not args.skip_drills:
        detection_delays(timedelta(minutes=args.step_minutes))
        false_positives(args.weeks)
    if not args.skip_scale:
        scale_cost(args.impressions, args.keep, args.hours)


if __name__ == "__main__":
    main()
