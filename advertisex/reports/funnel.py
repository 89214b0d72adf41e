"""``report funnel``: bid request → bid → win → impression → click → conversion, per campaign.

Each step with the rate from the step before; conversions are attributed ones under the
chosen model (credited to the campaign whose ads earned them). The last row, campaign
``(all)``, is the whole range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advertisex.reports.common import Platform, ReportOptions, run

if TYPE_CHECKING:
    import pyarrow as pa

SQL = """
WITH steps AS (
  SELECT CASE WHEN grouping(campaign_id) = 1 THEN '(all)' ELSE campaign_id END AS campaign_id,
    grouping(campaign_id) AS total,
    CAST(sum(bid_requests) AS BIGINT) AS bid_requests, CAST(sum(bids) AS BIGINT) AS bids,
    CAST(sum(wins) AS BIGINT) AS wins,
    CAST(sum(impressions) AS BIGINT) AS impressions, CAST(sum(clicks) AS BIGINT) AS clicks,
    round(sum(CREDIT) / 1e6, 4) AS conversions
  FROM marts.campaign_daily
  WHERE WHERE_DAILY
  GROUP BY GROUPING SETS ((campaign_id), ())
)
SELECT campaign_id, bid_requests, bids, wins, impressions, clicks, conversions,
  round(bids / nullif(bid_requests, 0), 6) AS bid_rate,
  round(wins / nullif(bids, 0), 6) AS win_rate,
  round(clicks / nullif(impressions, 0), 6) AS ctr,
  round(conversions / nullif(clicks, 0), 6) AS conversion_rate
FROM steps
ORDER BY total, campaign_id NULLS LAST
"""


def question(options: ReportOptions) -> tuple[str, tuple[str, ...]]:
    """The report as SQL and the tables it reads."""
    return SQL.replace("CREDIT", options.credit).replace("WHERE_DAILY", options.where("day")), (
        "marts.campaign_daily",
    )


def report(ax: Platform, options: ReportOptions) -> pa.Table:
    return run(ax, *question(options), options)
