"""Cross-source links of one stretch of ingest time, reading only the files each window needs.

For the rows ingested in [start, until) — clicks, conversions, programmatic impressions,
won bids — count those without their partner, per hour:

- a click matches an impression by ``impression_id``, or one of the same user and
  campaign at most ``click_window`` before it;
- a conversion matches a click of the same user and campaign within the click-through
  window, else an impression within the view-through window;
- an impression with an ``auction_id`` matches the bid request of that auction, and a
  won bid its impression, within the auction window.

Matching rows are looked up only in data files whose event times overlap the window
the rule needs (the file index keeps each file's bounds), narrowest window first: most
clicks find their impression within the hour before them, so the day-long id horizon
and view-through window are searched only for what is still unmatched — usually
nothing. That keeps an hour's check at the cost of about an hour of data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from advertisex.monitor.files import DataFile
from advertisex.monitor.model import LINKS

_HOUR = "date_trunc('hour', ingest_time) AS hour"
_RECENT = "ingest_time >= $start AND ingest_time < $until"


def links(
    con: Any,
    files: dict[str, list[DataFile]],
    start: datetime,
    until: datetime,
    corr: Any,
    view: Any,
) -> pa.Table:
    """LINKS rows for [start, until); ``view(con, schema, table, paths)`` registers a view."""
    window = {"start": start, "until": until}
    lookups = 0

    def near(table: str, low: datetime | None, high: datetime | None) -> str:
        """A view over ``table``'s files whose event times overlap [low, high]."""
        nonlocal lookups
        lookups += 1
        paths = [
            f.path
            for f in files[table]
            if low is not None
            and high is not None
            and (f.event_max is None or f.event_max >= low)
            and (f.event_min is None or f.event_min <= high)
        ]
        view(con, f"near{lookups}", table, paths)
        return f'near{lookups}."{table.split(".")[1]}"'

    def bounds(sql: str) -> tuple[datetime | None, datetime | None]:
        return con.execute(f"SELECT min(event_time), max(event_time) FROM ({sql})").fetchall()[0]

    def seconds(s: int) -> timedelta:
        return timedelta(seconds=s)

    con.execute(
        f"CREATE OR REPLACE TEMP TABLE c AS SELECT row_number() OVER () AS id, {_HOUR}, "
        f"user_id, campaign_id, impression_id, event_time FROM recent.clicks WHERE {_RECENT}",
        window,
    )
    low, high = bounds("FROM c")
    i = near("curated.impressions", low and low - seconds(corr.click_window_seconds), high)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE cm AS SELECT id FROM c WHERE
        impression_id IN (SELECT impression_id FROM {i})
        OR EXISTS (SELECT 1 FROM {i} i WHERE i.user_id = c.user_id
                   AND i.campaign_id = c.campaign_id
                   AND i.event_time BETWEEN c.event_time - to_seconds($w) AND c.event_time)""",
        {"w": corr.click_window_seconds},
    )
    rest = "FROM c WHERE impression_id IS NOT NULL AND id NOT IN (SELECT id FROM cm)"
    low, high = bounds(rest)
    if low is not None:  # named impressions older than the click window: search the horizon
        i = near("curated.impressions", low - seconds(corr.impression_id_horizon_seconds), high)
        con.execute(
            f"INSERT INTO cm SELECT id {rest} AND impression_id IN (SELECT impression_id FROM {i})"
        )

    con.execute(
        f"CREATE OR REPLACE TEMP TABLE v AS SELECT row_number() OVER () AS id, {_HOUR}, "
        f"user_id, campaign_id, event_time FROM recent.conversions WHERE {_RECENT}",
        window,
    )
    low, high = bounds("FROM v")
    k = near("curated.clicks", low and low - seconds(corr.click_through_window_seconds), high)
    match = """EXISTS (SELECT 1 FROM {t} x WHERE x.user_id = v.user_id
               AND x.campaign_id = v.campaign_id
               AND x.event_time BETWEEN v.event_time - to_seconds($w) AND v.event_time)"""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE vm AS SELECT id FROM v WHERE {match.format(t=k)}",
        {"w": corr.click_through_window_seconds},
    )
    rest = "FROM v WHERE id NOT IN (SELECT id FROM vm)"
    low, high = bounds(rest)
    if low is not None:  # not clicked: look for a view
        i = near("curated.impressions", low - seconds(corr.view_through_window_seconds), high)
        con.execute(
            f"INSERT INTO vm SELECT id {rest} AND {match.format(t=i)}",
            {"w": corr.view_through_window_seconds},
        )

    auction = seconds(corr.auction_window_seconds)
    p_sql = f"FROM recent.impressions WHERE {_RECENT} AND auction_id IS NOT NULL"
    low, high = con.sql(
        f"SELECT min(event_time), max(event_time) {p_sql}", params=window
    ).fetchall()[0]
    b = near("curated.bid_requests", low and low - auction, high and high + auction)
    won = (
        "(coalesce(json_extract_string(extras, '$.won') IN ('true', '1'), false)"
        " OR json_extract(extras, '$.win_price') IS NOT NULL)"
    )
    b_sql = f"FROM recent.bid_requests WHERE {_RECENT} AND {won}"
    low2, high2 = con.sql(
        f"SELECT min(event_time), max(event_time) {b_sql}", params=window
    ).fetchall()[0]
    m = near("curated.impressions", low2 and low2 - auction, high2 and high2 + auction)
    sql = f"""
    WITH clicks AS (
      SELECT hour, count(*) AS clicks,
        count(*) FILTER (WHERE id NOT IN (SELECT id FROM cm)) AS orphan_clicks FROM c GROUP BY hour
    ), conversions AS (
      SELECT hour, count(*) AS conversions,
        count(*) FILTER (WHERE id NOT IN (SELECT id FROM vm)) AS unattributed_conversions
      FROM v GROUP BY hour
    ), programmatic AS (
      SELECT {_HOUR}, count(*) AS programmatic_impressions,
        count(*) FILTER (WHERE auction_id NOT IN (SELECT auction_id FROM {b}))
          AS impressions_without_bid
      {p_sql} GROUP BY ALL
    ), won AS (
      SELECT {_HOUR}, count(*) AS won_bids,
        count(*) FILTER (WHERE auction_id NOT IN
          (SELECT auction_id FROM {m} WHERE auction_id IS NOT NULL)) AS won_bids_without_impression
      {b_sql} GROUP BY ALL
    ), hours AS (
      SELECT hour FROM clicks UNION SELECT hour FROM conversions
      UNION SELECT hour FROM programmatic UNION SELECT hour FROM won
    )
    SELECT {", ".join(f"coalesce({c}, 0) AS {c}" if c != "hour" else "hours.hour" for c in LINKS.names)}
    FROM hours LEFT JOIN clicks USING (hour) LEFT JOIN conversions USING (hour)
      LEFT JOIN programmatic USING (hour) LEFT JOIN won USING (hour)
    """
    return con.sql(sql, params=window).to_arrow_table().cast(LINKS)
