"""Bench: correlate 10 M impressions, 200 k clicks and 20 k conversions; late clicks incrementally.

    .venv/bin/python bench/correlate.py                      # the issue's sizes
    .venv/bin/python bench/correlate.py --impressions 2000000 --clicks 40000 --conversions 4000
    .venv/bin/python bench/correlate.py --repeat 3 --correlate-only   # part 1 only, three times

Data is drawn directly with numpy (the traffic generator writes files and would dominate):
heavy-tailed users (a few see very many ads), 20 campaigns × 5 creatives over 30 days,
clicks seconds to minutes after an impression (70 % carrying its impression_id),
conversions hours after a click or an impression. Prints figures; asserts nothing.

Part 1 times the kernels alone (``match_clicks`` + ``attribute_conversions``: the
correlation; ``match_bids`` is not part of the figure). Part 2 builds all marts once
(full recompute, in-memory stores), then lands a batch of late clicks (a delayed file:
two hours of clicks, a day before the end) and times the incremental update against another full recompute.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from _args import positive, whole

T0 = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp() * 1_000_000)
SPAN = 30 * 86_400 * 1_000_000
TS = pa.timestamp("us", tz="UTC")
TARGET_S = 5.0  # clicks → impressions + conversions → touches at the default sizes (issue 14)


def _cpu() -> float:
    """CPU seconds this process used so far (user + system, every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def pick(rng: np.random.Generator, vocabulary: list[str], n: int) -> pa.Array:
    index = pa.array(rng.integers(0, len(vocabulary), n).astype(np.int32))
    return pa.DictionaryArray.from_arrays(index, pa.array(vocabulary)).cast(pa.string())


def traffic(n_imp: int, n_clk: int, n_cnv: int, seed: int = 1) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    n_users = max(1000, n_imp // 20)
    weight = 1.0 / np.arange(1, n_users + 1) ** 1.05
    user = rng.choice(n_users, n_imp, p=weight / weight.sum())
    campaign = rng.integers(0, 20, n_imp)
    creative = campaign * 5 + rng.integers(0, 5, n_imp)
    at = np.sort(rng.integers(T0, T0 + SPAN, n_imp))
    user_ids = ids("u-", user)
    campaign_ids = ids("cmp-", campaign)
    impressions = pa.table(
        {
            "impression_id": ids("imp-", np.arange(n_imp)),
            "event_time": pa.array(at, TS),
            "user_id": user_ids,
            "campaign_id": campaign_ids,
            "ad_creative_id": ids("cr-", creative),
            "country": pick(rng, ["US", "DE", "FR", "GB", "IN"], n_imp),
            "device_type": pick(rng, ["mobile", "desktop", "tablet"], n_imp),
            "website": pick(rng, ["https://example.com/a", "https://example.org/b"], n_imp),
            "cost": pa.array(np.round(rng.uniform(0.0005, 0.006, n_imp), 6)),
            "auction_id": pa.nulls(n_imp, pa.string()),
        }
    )
    shown = rng.choice(n_imp, n_clk, replace=False)
    linked = rng.random(n_clk) < 0.7
    clicks = pa.table(
        {
            "event_id": ids("clk-", np.arange(n_clk)),
            "event_time": pa.array(
                at[shown] + rng.lognormal(np.log(20e6), 1.0, n_clk).astype(np.int64), TS
            ),
            "user_id": user_ids.take(pa.array(shown)),
            "campaign_id": campaign_ids.take(pa.array(shown)),
            "ad_creative_id": pa.nulls(n_clk, pa.string()),
            "impression_id": pc.if_else(
                pa.array(linked), impressions["impression_id"].take(pa.array(shown)), None
            ),
        }
    )
    source = rng.choice(n_clk, n_cnv, replace=False)
    conversions = pa.table(
        {
            "event_id": ids("cnv-", np.arange(n_cnv)),
            "event_time": pa.array(
                pc.cast(clicks["event_time"], pa.int64()).to_numpy()[source]
                + rng.lognormal(np.log(3 * 3600e6), 1.2, n_cnv).astype(np.int64),
                TS,
            ),
            "user_id": clicks["user_id"].take(pa.array(source)),
            "campaign_id": clicks["campaign_id"].take(pa.array(source)),
            "ad_creative_id": pa.nulls(n_cnv, pa.string()),
            "conversion_type": pick(rng, ["purchase"], n_cnv),
            "conversion_value": pa.array(np.round(rng.lognormal(np.log(45), 0.8, n_cnv), 2)),
            "currency": pick(rng, ["USD"], n_cnv),
        }
    )
    return {"impressions": impressions, "clicks": clicks, "conversions": conversions}


def late_clicks(impressions: pa.Table, n: int, seed: int = 2) -> pa.Table:
    """Clicks on impressions of a two-hour window ending a day before the data ends."""
    rng = np.random.default_rng(seed)
    at = pc.cast(impressions["event_time"], pa.int64()).to_numpy()
    lo, hi = T0 + SPAN - 26 * 3_600_000_000, T0 + SPAN - 24 * 3_600_000_000
    window = np.flatnonzero((at >= lo) & (at < hi))
    shown = pa.array(rng.choice(window, min(n, len(window)), replace=False))
    delay = rng.lognormal(np.log(20e6), 1.0, len(shown)).astype(np.int64)
    return pa.table(
        {
            "event_id": ids("late-", np.arange(len(shown))),
            "event_time": pa.array(at[shown.to_numpy()] + delay, TS),
            "user_id": impressions["user_id"].take(shown),
            "campaign_id": impressions["campaign_id"].take(shown),
            "ad_creative_id": pa.nulls(len(shown), pa.string()),
            "impression_id": impressions["impression_id"].take(shown),
        }
    )


def curated(name: str, rows: pa.Table) -> pa.Table:
    """Pad kernel columns out to the full curated schema (nulls and fillers)."""
    from advertisex.model.schemas import TABLES

    schema = TABLES[name].schema
    n = rows.num_rows
    columns = []
    for f in schema:
        if f.name in rows.column_names:
            columns.append(rows.column(f.name).cast(f.type))
        elif f.name == "event_date":
            columns.append(pc.cast(rows.column("event_time"), pa.date32()))
        elif f.name == "event_hour":
            columns.append(pc.cast(pc.hour(rows.column("event_time")), pa.int8()))
        elif not f.nullable:
            value = {pa.string(): "x", pa.int64(): 0}.get(f.type, datetime(2026, 10, 1, tzinfo=UTC))
            columns.append(pc.fill_null(pa.nulls(n, f.type), pa.scalar(value, f.type)))
        else:
            columns.append(pa.nulls(n, f.type))
    return pa.table(columns, schema=schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=positive, default=10_000_000)
    parser.add_argument("--clicks", type=positive, default=200_000)
    parser.add_argument("--conversions", type=positive, default=20_000)
    parser.add_argument("--late-clicks", type=whole, default=1_000)
    parser.add_argument(
        "--repeat",
        type=positive,
        default=1,
        help="time the correlation this many times (same data)",
    )
    parser.add_argument(
        "--correlate-only", action="store_true", help="skip part 2 (the marts' recompute)"
    )
    args = parser.parse_args()

    from advertisex.kernels.attribute import attribute_conversions
    from advertisex.kernels.correlate import match_clicks
    from advertisex.kernels.windows import Windows

    started = time.perf_counter()
    data = traffic(args.impressions, args.clicks, args.conversions)
    print(
        f"drew {args.impressions:,} impressions, {args.clicks:,} clicks, "
        f"{args.conversions:,} conversions in {time.perf_counter() - started:.1f} s"
    )

    for _ in range(args.repeat):
        started, cpu = time.perf_counter(), _cpu()
        matched = match_clicks(data["impressions"], data["clicks"], Windows())
        clicks_s = time.perf_counter() - started
        started = time.perf_counter()
        attributed = attribute_conversions(data["impressions"], data["clicks"], data["conversions"])
        conversions_s = time.perf_counter() - started
        cpu = _cpu() - cpu
        kinds = ", ".join(
            f"{k['values']} {k['counts']:,}" for k in pc.value_counts(matched["match"]).to_pylist()
        )
        total = clicks_s + conversions_s
        print(
            f"correlate: clicks → impressions {clicks_s:.2f} s ({kinds}); "
            f"conversions → touches {conversions_s:.2f} s; total {total:.2f} s "
            f"(target ≤ {TARGET_S:.0f} s → {total / TARGET_S:.2f}× the target); "
            f"CPU {cpu:.2f} s over both cores; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    del attributed, matched
    if args.correlate_only:
        return

    from advertisex.marts import maintain
    from advertisex.marts.store import MemoryCurated, MemoryMarts

    store, marts = MemoryCurated(), MemoryMarts()
    store.append(
        {
            "curated.impressions": curated("curated.impressions", data["impressions"]),
            "curated.clicks": curated("curated.clicks", data["clicks"]),
            "curated.conversions": curated("curated.conversions", data["conversions"]),
        }
    )
    rules = maintain.MatchingRules()
    full = maintain.rebuild(store, marts, rules)
    print(
        f"full recompute of all marts: {full.seconds:.2f} s "
        f"({full.clicks:,} clicks, {full.conversions:,} conversions, {full.hours:,} hourly rows)"
    )

    late = late_clicks(data["impressions"], args.late_clicks)
    store.append({"curated.clicks": curated("curated.clicks", late)})
    step = maintain.update(store, marts, rules)
    print(
        f"incremental: {args.late_clicks:,} late clicks (a delayed file: 2 hours, a day ago) "
        f"→ {step.seconds:.2f} s "
        f"({step.users:,} users, {step.clicks:,} clicks and {step.conversions:,} conversions "
        f"re-attributed, {step.hours:,} hours and {step.days} days re-rolled)"
    )
    again = maintain.rebuild(store, MemoryMarts(), rules)
    print(
        f"full recompute with them: {again.seconds:.2f} s → incremental is "
        f"{again.seconds / step.seconds:.1f}× faster"
    )


if __name__ == "__main__":
    main()
