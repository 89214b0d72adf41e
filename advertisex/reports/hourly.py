"""``report hourly``: per campaign and hour — impressions, clicks, conversions, CTR, spend.

From ``marts.campaign_hourly`` summed over creatives, countries and devices: the series
the console charts for one campaign. ``conversions`` counts conversion events in their
own hour; ``attributed_conversions`` is what the hour's ads earned under the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advertisex.reports.common import Platform, ReportOptions, run

if TYPE_CHECKING:
    import pyarrow as pa

SQL = """
SELECT campaign_id, hour,
  CAST(sum(impressions) AS BIGINT) AS impressions, CAST(sum(clicks) AS BIGINT) AS clicks,
  CAST(sum(conversions) AS BIGINT) AS conversions,
  round(sum(clicks) / nullif(sum(impressions), 0), 6) AS ctr,
  round(sum(spend_micros) / 1e6, 6) AS spend,
  round(sum(CREDIT) / 1e6, 4) AS attributed_conversions
FROM marts.campaign_hourly
WHERE WHERE_HOURLY
GROUP BY ALL
ORDER BY hour, campaign_id NULLS LAST
"""


def question(options: ReportOptions) -> tuple[str, tuple[str, ...]]:
    """The report as SQL and the tables it reads."""
    return SQL.replace("CREDIT", options.credit).replace("WHERE_HOURLY", options.where("hour")), (
        "marts.campaign_hourly",
    )


def report(ax: Platform, options: ReportOptions) -> pa.Table:
    return run(ax, *question(options), options)
