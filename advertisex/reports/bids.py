"""``report bids``: per campaign and day — requests, bids, wins, and prices (CPM).

From ``marts.campaign_daily``: a request is *won* when an impression carries its
auction id. ``avg_clearing_cpm`` is what won impressions cost (per thousand);
``shading`` = 1 - clearing / bid over won auctions: how far below its bid the bidder paid.
Requests the bidder passed on have no campaign and show as a campaign-less row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advertisex.reports.common import Platform, ReportOptions, run

if TYPE_CHECKING:
    import pyarrow as pa

SQL = """
SELECT campaign_id, day,
  CAST(sum(bid_requests) AS BIGINT) AS bid_requests, CAST(sum(bids) AS BIGINT) AS bids,
  CAST(sum(bid_requests) - sum(bids) AS BIGINT) AS no_bids, CAST(sum(wins) AS BIGINT) AS wins,
  round(sum(wins) / nullif(sum(bids), 0), 6) AS win_rate,
  round(sum(bid_micros) / 1e6 / nullif(sum(bids), 0), 4) AS avg_bid_cpm,
  round(sum(floor_micros) / 1e6 / nullif(sum(floors), 0), 4) AS avg_floor_cpm,
  round(sum(won_bid_micros) / 1e6 / nullif(sum(wins), 0), 4) AS avg_won_bid_cpm,
  round(sum(clearing_micros) / 1e6 / nullif(sum(wins), 0), 4) AS avg_clearing_cpm,
  round(1 - sum(clearing_micros) / nullif(sum(won_bid_micros), 0), 4) AS shading
FROM marts.campaign_daily
WHERE WHERE_DAILY
GROUP BY ALL
HAVING sum(bid_requests) > 0
ORDER BY day, campaign_id NULLS LAST
"""


def question(options: ReportOptions) -> tuple[str, tuple[str, ...]]:
    """The report as SQL and the tables it reads."""
    return SQL.replace("WHERE_DAILY", options.where("day")), ("marts.campaign_daily",)


def report(ax: Platform, options: ReportOptions) -> pa.Table:
    return run(ax, *question(options), options)
