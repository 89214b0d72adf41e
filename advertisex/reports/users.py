"""``report users``: how people meet the ads — frequency, reach, time to click and to convert.

Sections (each a table):

* ``frequency`` — impressions per user per campaign, bucketed (from curated.impressions:
  the only place single impressions live);
* ``reach`` — distinct users per campaign over the whole range, from the daily user
  sketches merged across days (exact up to 2048 users, HyperLogLog beyond), with
  impressions and average frequency;
* ``time_to_click`` — matched clicks by delay after their impression;
* ``time_to_convert`` — attributed conversions by delay after their touch (the first
  touch under ``--model first``, else the last).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from advertisex.kernels import sketch
from advertisex.reports.common import Platform, ReportOptions, run


def _buckets(value: str, edges: Sequence[tuple[float, str]], last: str) -> str:
    cases = " ".join(f"WHEN {value} < {edge} THEN '{label}'" for edge, label in edges)
    return f"CASE {cases} ELSE '{last}' END"


def _distribution(source: str, value: str, edges: Sequence[tuple[float, str]], last: str) -> str:
    return f"""
    SELECT {_buckets("v", edges, last)} AS bucket, count(*) AS count,
      round(count(*) / sum(count(*)) OVER (), 4) AS share, min(v) AS low
    FROM (SELECT {value} AS v FROM {source}) GROUP BY bucket ORDER BY low
    """


FREQUENCY_EDGES = [(2, "1"), (3, "2"), (4, "3"), (6, "4-5"), (11, "6-10"), (21, "11-20")]
CLICK_EDGES = [(10, "<10s"), (30, "10-30s"), (60, "30-60s"), (300, "1-5m"), (900, "5-15m")]
CLICK_EDGES += [(3600, "15-60m")]
CONVERT_EDGES = [(600, "<10m"), (3600, "10-60m"), (6 * 3600, "1-6h"), (86400, "6-24h")]
CONVERT_EDGES += [(3 * 86400, "1-3d"), (7 * 86400, "3-7d")]


def report(ax: Platform, options: ReportOptions) -> dict[str, pa.Table]:
    impressions = f"""(SELECT campaign_id, user_id, count(*) AS n FROM curated.impressions
                      WHERE {options.where("event_time")} GROUP BY ALL)"""
    clicks = f"""(SELECT seconds_to_click FROM marts.attributed_clicks
                 WHERE match <> 'orphan' AND {options.where("event_time")})"""
    touch = "first_touch_time" if options.model == "first" else "last_touch_time"
    conversions = f"""(SELECT epoch_us(event_time) / 1e6 - epoch_us({touch}) / 1e6 AS s
                      FROM marts.attributed_conversions
                      WHERE attribution <> 'none' AND {options.where("event_time")})"""
    return {
        "frequency": _drop_low(
            run(
                ax,
                _distribution(impressions, "n", FREQUENCY_EDGES, "21+"),
                ("curated.impressions",),
                options,
            )
        ),
        "reach": reach(ax, options),
        "time_to_click": _drop_low(
            run(
                ax,
                _distribution(clicks, "seconds_to_click", CLICK_EDGES, "1h+"),
                ("marts.attributed_clicks",),
                options,
            )
        ),
        "time_to_convert": _drop_low(
            run(
                ax,
                _distribution(conversions, "s", CONVERT_EDGES, "7d+"),
                ("marts.attributed_conversions",),
                options,
            )
        ),
    }


def reach(ax: Platform, options: ReportOptions) -> pa.Table:
    """Distinct users per campaign over the range: the union of the days' sketches."""
    days = run(
        ax,
        f"""SELECT campaign_id, users FROM marts.campaign_daily
            WHERE {options.where("day")} AND campaign_id IS NOT NULL AND impressions > 0
            ORDER BY campaign_id""",
        ("marts.campaign_daily",),
        options,
    )
    shown = run(
        ax,
        f"""SELECT campaign_id, CAST(sum(impressions) AS BIGINT) AS impressions FROM marts.campaign_daily
            WHERE {options.where("day")} AND campaign_id IS NOT NULL GROUP BY ALL""",
        ("marts.campaign_daily",),
        options,
    )
    campaigns = days.column("campaign_id").to_pylist()
    names = sorted(set(campaigns))
    index = {name: i for i, name in enumerate(names)}
    groups = np.array([index[c] for c in campaigns], dtype=np.int64)
    merged = sketch.merge(groups, days.column("users"), len(names))
    users = sketch.estimate(merged)
    totals = dict(
        zip(
            shown.column("campaign_id").to_pylist(),
            shown.column("impressions").to_pylist(),
            strict=True,
        )
    )
    rows = [
        {
            "campaign_id": name,
            "users": int(users[i]),
            "impressions": int(totals.get(name) or 0),
            "avg_frequency": round(int(totals.get(name) or 0) / int(users[i]), 3)
            if users[i]
            else None,
        }
        for i, name in enumerate(names)
    ]
    schema = pa.schema(
        [
            ("campaign_id", pa.string()),
            ("users", pa.int64()),
            ("impressions", pa.int64()),
            ("avg_frequency", pa.float64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def _drop_low(table: pa.Table) -> pa.Table:
    return table.drop_columns(["low"])
