"""``report campaigns``: per campaign and day — delivery, response, money and auctions.

Read from ``marts.campaign_daily``: the day's hourly rows summed, and unique users
from the day's merged user sketch. ``clicks`` and
``conversions`` count events on their own day; ``attributed_conversions`` and
``attributed_value`` are what the day's ads earned under the chosen model, and
``cpa`` = spend / attributed conversions, ``roas`` = attributed value / spend.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from advertisex.reports.common import Platform, ReportOptions, run

if TYPE_CHECKING:
    import pyarrow as pa

SQL = """
SELECT campaign_id, day, impressions, unique_users, clicks, conversions,
  round(clicks / nullif(impressions, 0), 6) AS ctr,
  round(conversions / nullif(clicks, 0), 6) AS conversion_rate,
  round(spend_micros / 1e6, 6) AS spend,
  round(conversion_value_micros / 1e6, 2) AS conversion_value,
  round(CREDIT / 1e6, 4) AS attributed_conversions,
  round(VALUE / 1e6, 2) AS attributed_value,
  round(spend_micros / nullif(CREDIT, 0), 4) AS cpa,
  round(VALUE / nullif(spend_micros, 0), 4) AS roas,
  round(spend_micros / 1e3 / nullif(impressions, 0), 4) AS ecpm,
  bids, wins, round(wins / nullif(bids, 0), 6) AS win_rate
FROM marts.campaign_daily
WHERE WHERE_DAILY AND (campaign_id IS NOT NULL OR impressions + clicks + conversions > 0)
ORDER BY day, campaign_id NULLS LAST
"""


def campaign_days(
    ax: Platform, start: date | None = None, end: date | None = None, **options: object
) -> pa.Table:
    """The report's rows; ``options`` are ReportOptions fields (campaign, model)."""
    return report(ax, ReportOptions(start, end, **options))  # type: ignore[arg-type]


def question(options: ReportOptions) -> tuple[str, tuple[str, ...]] | None:
    """The report as SQL and the tables it reads; None with invalid traffic beside it
    (two questions joined: :func:`report` answers that)."""
    return None if options.include_ivt else (_sql(options), ("marts.campaign_daily",))


def report(ax: Platform, options: ReportOptions) -> pa.Table:
    rows = run(ax, _sql(options), ("marts.campaign_daily",), options)
    return with_invalid_traffic(ax, rows, options) if options.include_ivt else rows


def _sql(options: ReportOptions) -> str:
    return (
        SQL.replace("CREDIT", options.credit)
        .replace("VALUE", options.value)
        .replace("WHERE_DAILY", options.where("day"))
    )


IVT_SQL = """
SELECT campaign_id, CAST(event_time AS DATE) AS day,
  count(*) FILTER (WHERE event_table = 'curated.impressions') AS ivt_impressions,
  count(*) FILTER (WHERE event_table = 'curated.clicks') AS ivt_clicks,
  count(*) FILTER (WHERE event_table = 'curated.conversions') AS ivt_conversions
FROM curated.filtered
WHERE WHERE_FILTERED
GROUP BY ALL
"""


def with_invalid_traffic(ax: Platform, rows: pa.Table, options: ReportOptions) -> pa.Table:
    """The report with invalid traffic (``curated.filtered``) counted beside each row."""
    from advertisex.util import engine

    ivt = run(
        ax,
        IVT_SQL.replace("WHERE_FILTERED", options.where("event_time")),
        ("curated.filtered",),
        options,
    )
    return engine.run(
        """
        SELECT coalesce(r.campaign_id, i.campaign_id) AS campaign_id, coalesce(r.day, i.day) AS day,
          r.* EXCLUDE (campaign_id, day), coalesce(i.ivt_impressions, 0) AS ivt_impressions,
          coalesce(i.ivt_clicks, 0) AS ivt_clicks, coalesce(i.ivt_conversions, 0) AS ivt_conversions
        FROM r FULL JOIN i ON r.campaign_id IS NOT DISTINCT FROM i.campaign_id AND r.day = i.day
        ORDER BY coalesce(r.day, i.day), coalesce(r.campaign_id, i.campaign_id) NULLS LAST
        """,
        r=rows,
        i=ivt,
    )
