"""``report campaigns``: per campaign and day — impressions, reach, clicks, conversions, spend.

Plain attribution: a click or conversion counts for the campaign it names. Proper
correlation (which impression earned which click) is the correlator's job.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from advertisex.api import AdvertiseX

SQL = """
WITH imp AS (
  SELECT campaign_id, CAST(event_time AS DATE) AS day,
         count(*) AS impressions, count(DISTINCT user_id) AS unique_users, sum(cost) AS spend
  FROM curated.impressions
  WHERE event_time >= $start AND event_time < $end
  GROUP BY ALL
), clk AS (
  SELECT campaign_id, CAST(event_time AS DATE) AS day, count(*) AS clicks
  FROM curated.clicks WHERE event_time >= $start AND event_time < $end GROUP BY ALL
), cnv AS (
  SELECT campaign_id, CAST(event_time AS DATE) AS day, count(*) AS conversions,
         sum(conversion_value) AS conversion_value
  FROM curated.conversions WHERE event_time >= $start AND event_time < $end GROUP BY ALL
)
SELECT coalesce(imp.campaign_id, clk.campaign_id, cnv.campaign_id) AS campaign_id,
       coalesce(imp.day, clk.day, cnv.day) AS day,
       coalesce(impressions, 0) AS impressions,
       coalesce(unique_users, 0) AS unique_users,
       coalesce(clicks, 0) AS clicks,
       coalesce(conversions, 0) AS conversions,
       round(coalesce(clicks, 0) / nullif(impressions, 0), 6) AS ctr,
       round(coalesce(conversions, 0) / nullif(clicks, 0), 6) AS conversion_rate,
       round(coalesce(spend, 0), 6) AS spend,
       round(coalesce(conversion_value, 0), 2) AS conversion_value
FROM imp
FULL JOIN clk USING (campaign_id, day)
FULL JOIN cnv USING (campaign_id, day)
ORDER BY day, campaign_id NULLS LAST
"""


def campaign_days(ax: AdvertiseX, start: date | None, end: date | None) -> pa.Table:
    from advertisex.lake.query import QueryEngine

    engine = QueryEngine(ax.lake, ("curated.impressions", "curated.clicks", "curated.conversions"))
    low = start.isoformat() if start else "0001-01-01"
    high = (date.fromordinal(end.toordinal() + 1)).isoformat() if end else "9999-12-31"
    return engine.con.sql(SQL, params={"start": low, "end": high}).to_arrow_table()
