"""Enrichment cost: seconds per million impressions, and what drives it.

Frames and standardizes the generated impressions of a bench dataset once (not
timed), loads its dims/*.csv as SCD-2 versions, then times the enrichment kernel
(best of --repeat runs) with and without dimensions, and each of its parts. User
agents are parsed once per distinct agent, so the distinct-agent count is printed
beside the cost.

    python bench/enrich.py [--events 2000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from _args import positive
from process import _dataset  # bench/ is on sys.path when this script runs

BUDGET_EVENTS_PER_S = 300_000  # issue 4's end-to-end target


def standardized_impressions(folder: Path) -> pa.Table:
    from advertisex.formats.jsonfmt import frame_json
    from advertisex.kernels.standardize import Rules, standardize_impressions

    frames = []
    for index, path in enumerate(sorted((folder / "impressions").iterdir())):
        frame = frame_json(path.read_bytes())
        frames.append(
            frame.append_column("segment", pa.array([index] * frame.num_rows, pa.int32()))
        )
    rows = standardize_impressions(
        pa.concat_tables(frames), Rules(datetime(2100, 1, 1, tzinfo=UTC))
    )
    return rows.filter(pc.equal(pc.list_value_length(rows.column("reasons")), 0))


def dimensions(folder: Path):  # type: ignore[no-untyped-def]
    from advertisex.dims.model import Dimensions
    from advertisex.dims.read import read_dim_file
    from advertisex.dims.scd import merge

    now = datetime.now(UTC)
    versions = {}
    for kind in ("campaigns", "creatives"):
        parsed = read_dim_file(folder / "dims" / f"{kind}.csv")
        result = merge(
            parsed.kind,
            parsed.kind.schema.empty_table(),
            parsed.rows,
            effective_from=now,
            loaded_at=now,
            source_file=f"{kind}.csv",
        )
        versions[kind] = result.versions
    return Dimensions(**versions)


def best(function: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    from advertisex.kernels import enrich as kernel

    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=positive, default=2_000_000)
    parser.add_argument("--repeat", type=positive, default=3)
    args = parser.parse_args()

    folder = _dataset(args.events)  # the same cached dataset bench/process.py uses
    rows = standardized_impressions(folder)
    dims = dimensions(folder)
    n = rows.num_rows
    per_million = 1_000_000 / n
    kernel.describe_user_agent.cache_clear()
    started = time.perf_counter()
    kernel.enrich("impressions", rows, dims)
    cold = time.perf_counter() - started  # includes ua-parser's rule compilation
    without_campaign = rows.set_column(
        rows.column_names.index("campaign_id"), "campaign_id", pa.nulls(n, pa.string())
    )
    parts = {
        "enrich, with dimensions": lambda: kernel.enrich("impressions", rows, dims),
        "enrich, no dimensions loaded": lambda: kernel.enrich("impressions", rows, None),
        "enrich, campaign_id from creative": lambda: kernel.enrich(
            "impressions", without_campaign, dims
        ),
        "  user agents (distinct, cached)": lambda: kernel.parse_user_agents(
            rows.column("user_agent")
        ),
        "  site host": lambda: kernel.site_host(rows.column("website")),
        "  event date and hour": lambda: kernel.day_and_hour(rows.column("event_time")),
        "  campaign + advertiser as of time": lambda: kernel.resolve_campaigns(
            rows.column("event_time"),
            without_campaign.column("campaign_id"),
            rows.column("ad_creative_id"),
            dims,
        ),
    }
    distinct_agents = len(pc.unique(rows.column("user_agent")))
    distinct_sites = len(pc.unique(rows.column("website")))
    print(
        f"impressions: {n:,} (from {folder.name}); distinct user agents: {distinct_agents}; "
        f"distinct website URLs: {distinct_sites:,}"
    )
    print(
        f"first call, ua-parser cold (rules compiled, every agent parsed): "
        f"{cold * per_million:.3f} s per million"
    )
    budget = 1_000_000 / BUDGET_EVENTS_PER_S
    print(f"{'step':38s} {'s per 1M impressions':>22s} {'of the 300k ev/s budget':>24s}")
    for label, function in parts.items():
        seconds = best(function, args.repeat) * per_million
        print(f"{label:38s} {seconds:22.3f} {seconds / budget:23.1%}")


if __name__ == "__main__":
    main()
