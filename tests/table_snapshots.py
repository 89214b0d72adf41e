"""Tables as comparable row lists: what the equality tests (replay, exactly-once, Spark vs
embedded) compare, without the columns that record when something ran."""

from __future__ import annotations

from typing import Any

# Columns that record when something ran, not what was computed.
WALL_CLOCK = {"ops.batches": ("started_at", "committed_at")}
CURATED = [
    "curated.impressions",
    "curated.clicks",
    "curated.conversions",
    "curated.bid_requests",
    "curated.quarantine",
    "curated.filtered",
]
MARTS = [
    "marts.attributed_clicks",
    "marts.attributed_conversions",
    "marts.campaign_hourly",
    "marts.campaign_daily",
]


def snapshot(ax: Any, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of each named table, sorted, wall-clock columns left out."""
    tables = {}
    for name in names:
        skip = ", ".join(WALL_CLOCK.get(name, ()))
        select = f"* EXCLUDE ({skip})" if skip else "*"
        tables[name] = ax.query(f"select {select} from {name} order by all").to_pylist()
    return tables
