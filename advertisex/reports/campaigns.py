"""``report campaigns``: per campaign and day — delivery, response, money and auctions.

Read from ``marts.campaign_hourly`` (summed over the day's hours) and
``marts.campaign_daily`` (unique users: the day's merged user sketch). ``clicks`` and
``conversions`` count events on their own day; ``attributed_conversions`` and
``attributed_value`` are what the day's ads earned under the chosen model, and
``cpa`` = spend / attributed conversions, ``roas`` = attributed value / spend.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

from advertisex.reports.common import ReportOptions, run

if TYPE_CHECKING:
    from advertisex.api import AdvertiseX

SQL = """
WITH h AS (
  SELECT campaign_id, CAST(hour AS DATE) AS day,
    CAST(sum(impressions) AS BIGINT) AS impressions, CAST(sum(clicks) AS BIGINT) AS clicks,
    CAST(sum(conversions) AS BIGINT) AS conversions,
    CAST(sum(spend_micros) AS BIGINT) AS spend_micros,
    CAST(sum(conversion_value_micros) AS BIGINT) AS value_micros,
    CAST(sum(CREDIT) AS BIGINT) AS credit, CAST(sum(VALUE) AS BIGINT) AS credit_value,
    CAST(sum(bids) AS BIGINT) AS bids, CAST(sum(wins) AS BIGINT) AS wins
  FROM marts.campaign_hourly
  WHERE WHERE_HOURLY
  GROUP BY ALL
)
SELECT h.campaign_id, h.day, impressions, coalesce(d.unique_users, 0) AS unique_users,
  clicks, conversions,
  round(clicks / nullif(impressions, 0), 6) AS ctr,
  round(conversions / nullif(clicks, 0), 6) AS conversion_rate,
  round(spend_micros / 1e6, 6) AS spend,
  round(value_micros / 1e6, 2) AS conversion_value,
  round(credit / 1e6, 4) AS attributed_conversions,
  round(credit_value / 1e6, 2) AS attributed_value,
  round(spend_micros / nullif(credit, 0), 4) AS cpa,
  round(credit_value / nullif(spend_micros, 0), 4) AS roas,
  round(spend_micros / 1e3 / nullif(impressions, 0), 4) AS ecpm,
  bids, wins, round(wins / nullif(bids, 0), 6) AS win_rate
FROM h LEFT JOIN marts.campaign_daily d
  ON d.campaign_id IS NOT DISTINCT FROM h.campaign_id AND d.day = h.day
WHERE h.campaign_id IS NOT NULL OR impressions + clicks + conversions > 0
ORDER BY h.day, h.campaign_id NULLS LAST
"""


def campaign_days(
    ax: AdvertiseX, start: date | None = None, end: date | None = None, **options: object
) -> pa.Table:
    """The report's rows; ``options`` are ReportOptions fields (campaign, model)."""
    return report(ax, ReportOptions(start, end, **options))  # type: ignore[arg-type]


def report(ax: AdvertiseX, options: ReportOptions) -> pa.Table:
    sql = (
        SQL.replace("CREDIT", options.credit)
        .replace("VALUE", options.value)
        .replace("WHERE_HOURLY", options.where("hour"))
    )
    return run(ax, sql, ("marts.campaign_hourly", "marts.campaign_daily"), options)
