"""Bench: ``report campaigns`` over 30 days of marts (100 M impressions' worth) vs curated tables.

    .venv/bin/python bench/report.py                       # 100 M impressions, 30 days
    .venv/bin/python bench/report.py --impressions 10000000
    .venv/bin/python bench/report.py --keep bench/out/marts-100m   # reuse the marts next time

Mart rows are synthesized directly (no correlation run): ``marts.campaign_hourly`` with
20 campaigns × 5 creatives × 8 countries × 3 devices × 24 hours × 30 days (1.7 M rows
whose impressions add up to the total) and ``marts.campaign_daily`` (their sums per
campaign and day, 600 rows with HyperLogLog user sketches), appended day by day into
real Iceberg tables. The hourly rows carry small user sketches: the report reads the
daily mart only, so realistic hourly sketches would only slow the set-up.

The same question from curated tables: the pre-marts ``report campaigns`` SQL (count,
count distinct users and spend per campaign and day, joined with clicks and
conversions) over Parquet files of the same 100 M impressions, read by DuckDB exactly as
``advertisex query`` reads the lake. And the command a user types, ``advertisex report
campaigns --from … --to …``, timed as a whole (a fresh process each time: start-up, config,
listing the mart's files, the query, the table printed) against its 300 ms target.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _args import positive

START = date(2026, 10, 1)
CAMPAIGNS, CREATIVES, COUNTRIES, DEVICES = 20, 5, 8, 3

CURATED_SQL = """
WITH imp AS (
  SELECT campaign_id, CAST(event_time AS DATE) AS day,
         count(*) AS impressions, count(DISTINCT user_id) AS unique_users, sum(cost) AS spend
  FROM impressions WHERE event_time >= $low AND event_time < $high GROUP BY ALL
), clk AS (
  SELECT campaign_id, CAST(event_time AS DATE) AS day, count(*) AS clicks
  FROM clicks WHERE event_time >= $low AND event_time < $high GROUP BY ALL
), cnv AS (
  SELECT campaign_id, CAST(event_time AS DATE) AS day, count(*) AS conversions
  FROM conversions WHERE event_time >= $low AND event_time < $high GROUP BY ALL
)
SELECT coalesce(imp.campaign_id, clk.campaign_id, cnv.campaign_id) AS campaign_id,
       coalesce(imp.day, clk.day, cnv.day) AS day, impressions, unique_users,
       clicks, conversions, clicks / nullif(impressions, 0) AS ctr, spend
FROM imp FULL JOIN clk USING (campaign_id, day) FULL JOIN cnv USING (campaign_id, day)
ORDER BY day, campaign_id
"""


def hourly_day(rng: np.random.Generator, day: date, per_day: int) -> pa.Table:
    from advertisex.kernels import sketch
    from advertisex.model.marts import CAMPAIGN_HOURLY, MEASURES

    keys = np.array(
        np.meshgrid(
            np.arange(CAMPAIGNS),
            np.arange(CREATIVES),
            np.arange(24),
            np.arange(COUNTRIES),
            np.arange(DEVICES),
            indexing="ij",
        )
    ).reshape(5, -1)
    n = keys.shape[1]
    share = rng.dirichlet(np.ones(n) * 2.0)
    impressions = rng.multinomial(per_day, share)
    clicks = rng.binomial(impressions, 0.008)
    conversions = rng.binomial(clicks, 0.04)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    columns: dict[str, object] = {
        "campaign_id": [f"cmp-{c:03d}" for c in keys[0]],
        "ad_creative_id": [
            f"cr-{c * CREATIVES + k:04d}" for c, k in zip(keys[0], keys[1], strict=True)
        ],
        "hour": [midnight + timedelta(hours=int(h)) for h in keys[2]],
        "country": [f"C{c}" for c in keys[3]],
        "device_type": [f"d{d}" for d in keys[4]],
    }
    values = {m: np.zeros(n, np.int64) for m in MEASURES}
    values["impressions"] = impressions
    values["spend_micros"] = impressions * rng.integers(1000, 5000, n)
    values["clicks"] = clicks
    values["conversions"] = conversions
    values["conv_last"] = values["conv_first"] = values["conv_linear"] = conversions * 1_000_000
    values["value_last"] = values["value_first"] = values["value_linear"] = conversions * 45_000_000
    values["bids"] = values["bid_requests"] = (impressions * 1.8).astype(np.int64)
    values["wins"] = impressions
    columns |= values
    columns["unique_users"] = np.minimum(impressions, 8)
    sizes = np.minimum(impressions, 8)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    hashes = pa.array(rng.integers(0, 2**64, int(offsets[-1]), dtype=np.uint64))
    few = pa.ListArray.from_arrays(pa.array(offsets), hashes)
    columns["users"] = sketch.from_lists(few)
    return pa.table(columns).cast(CAMPAIGN_HOURLY)


def daily_rows(rng: np.random.Generator, hourly: pa.Table) -> pa.Table:
    """The day's ``campaign_daily`` rows, with a realistic reach sketch (HyperLogLog) each."""
    from advertisex.kernels import sketch
    from advertisex.kernels.rollup import campaign_daily
    from advertisex.model.marts import CAMPAIGN_DAILY

    daily = campaign_daily(hourly).drop_columns(["unique_users", "users"])
    lists = [
        np.unique(rng.integers(0, 2**64, 20_000, dtype=np.uint64)) for _ in range(daily.num_rows)
    ]
    users = sketch.from_lists(pa.array(lists, pa.list_(pa.uint64())))
    daily = daily.append_column("unique_users", pa.array(sketch.estimate(users)))
    return daily.append_column("users", users).cast(CAMPAIGN_DAILY)


def curated_day(rng: np.random.Generator, day: date, per_day: int, out: Path) -> None:
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1e6)
    at = pa.array(midnight + rng.integers(0, 86_400_000_000, per_day), pa.timestamp("us", tz="UTC"))
    campaign = pa.DictionaryArray.from_arrays(
        pa.array(rng.integers(0, CAMPAIGNS, per_day), pa.int32()),
        pa.array([f"cmp-{c:03d}" for c in range(CAMPAIGNS)]),
    )
    users = pa.array(np.char.add("u-", rng.integers(0, 3_000_000, per_day).astype("U7")))
    table = pa.table(
        {
            "event_time": at,
            "campaign_id": campaign.cast(pa.string()),
            "user_id": users,
            "cost": rng.uniform(0.0005, 0.006, per_day),
        }
    )
    pq.write_table(table, out / f"impressions-{day}.parquet", compression="zstd")
    clicks = table.take(pa.array(rng.choice(per_day, per_day // 125, replace=False)))
    pq.write_table(clicks, out / f"clicks-{day}.parquet", compression="zstd")
    pq.write_table(clicks.slice(0, clicks.num_rows // 25), out / f"conversions-{day}.parquet")


def timed(run: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


CLI_TARGET_S = 0.300


def cli_seconds(data_dir: Path, args: list[str], repeat: int) -> float:
    """Median wall time of ``advertisex ARGS`` as a user runs it (console script, new process)."""
    script = Path(sys.executable).with_name("advertisex")
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(data_dir))
    subprocess.run([script, *args], env=env, check=True, capture_output=True)  # warm the page cache
    return timed(
        lambda: subprocess.run([script, *args], env=env, check=True, capture_output=True), repeat
    )


def build_marts(ax: object, days: list[date], per_day: int) -> None:
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    hourly_table = ax.lake.table("marts.campaign_hourly")  # type: ignore[attr-defined]
    daily_table = ax.lake.table("marts.campaign_daily")  # type: ignore[attr-defined]
    rows = 0
    for day in days:  # one append per day, as daily processing would leave them
        part = hourly_day(rng, day, per_day)
        hourly_table.append(part)
        daily_table.append(daily_rows(rng, part))
        rows += part.num_rows
    ax.lake.refresh()  # type: ignore[attr-defined]
    print(
        f"marts: {rows:,} hourly rows for {per_day * len(days):,} impressions over "
        f"{len(days)} days, written in {time.perf_counter() - started:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=positive, default=100_000_000)
    parser.add_argument("--days", type=positive, default=30)
    parser.add_argument("--repeat", type=positive, default=5)
    parser.add_argument(
        "--keep", type=Path, help="data folder for the marts: built once, reused when present"
    )
    parser.add_argument("--skip-curated", action="store_true", help="skip the curated comparison")
    args = parser.parse_args()

    import duckdb

    import advertisex
    from advertisex.reports.campaigns import report
    from advertisex.reports.common import ReportOptions

    per_day = args.impressions // args.days
    days = [START + timedelta(days=i) for i in range(args.days)]
    rng = np.random.default_rng(8)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.keep or Path(tmp) / "data"
        built = (data_dir / "catalog.db").exists()
        ax = advertisex.open(data_dir=data_dir)
        if not built:
            build_marts(ax, days, per_day)

        options = ReportOptions(days[0], days[-1])
        result = report(ax, options)
        marts_s = timed(lambda: report(ax, options), args.repeat)
        print(
            f"report campaigns from marts: {marts_s * 1000:.0f} ms median of {args.repeat} "
            f"({result.num_rows} rows; target < 200 ms)"
        )
        command = ["report", "campaigns", "--from", str(days[0]), "--to", str(days[-1])]
        for fmt in ("table", "json"):
            cli_s = cli_seconds(data_dir, [*command, "--format", fmt], args.repeat)
            print(
                f"`advertisex {' '.join(command)} --format {fmt}`, whole command: "
                f"{cli_s * 1000:.0f} ms median of {args.repeat} (target ≤ "
                f"{CLI_TARGET_S * 1000:.0f} ms → {cli_s / CLI_TARGET_S:.2f}× the target)"
            )
        if args.skip_curated:
            return

        out = Path(tmp) / "curated"
        out.mkdir()
        started = time.perf_counter()
        for day in days:
            curated_day(rng, day, per_day, out)
        print(
            f"curated: {per_day * args.days:,} impressions as Parquet in "
            f"{time.perf_counter() - started:.0f} s"
        )
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for name in ("impressions", "clicks", "conversions"):
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{out}/{name}-*.parquet')"
            )
        low, high = options.low, options.high

        def from_curated() -> None:
            con.sql(CURATED_SQL, params={"low": low, "high": high}).to_arrow_table()

        curated_s = timed(from_curated, max(1, args.repeat // 2))
        print(
            f"same question from curated tables: {curated_s * 1000:.0f} ms → marts are "
            f"{curated_s / marts_s:.0f}× faster"
        )


if __name__ == "__main__":
    main()
