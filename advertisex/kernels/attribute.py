"""Conversion attribution: which clicks (or views) earned each conversion, under three models.

Partitionable by ``user_id``. For a conversion of user U in campaign C at time t:

* when it names its click (``click_ref``, the click id a postback carried) and U has
  that click within the click-through window before t, that click is its only touch
  (``attribution = 'click_id'``) — an exact match wins over every window rule;
* otherwise the *touches* are U's clicks in C within the click-through window before t
  (``'click'``); when there is none, U's impressions of C within the view-through
  window (``'view'``, view-through); when there is none either, the conversion is
  unattributed (``'none'``);
* the touch path lists every touch in time order (ties by id), each with its credit
  under every model: *last-touch* (all credit to the last touch, the default),
  *first-touch* (to the first), *linear* (1/n to each of n touches).

Windows are inclusive (``t - window <= touch time <= t``) and may differ per campaign.
"""

from __future__ import annotations

import pyarrow as pa

from advertisex.kernels.correlate import sort_keys, used_params, window_expr
from advertisex.kernels.windows import Windows, campaign_table
from advertisex.model.marts import ATTRIBUTED_CONVERSIONS
from advertisex.util import engine

CONVERSION_COLUMNS = (
    "event_id",
    "event_time",
    "user_id",
    "campaign_id",
    "ad_creative_id",
    "conversion_type",
    "conversion_value",
    "currency",
    "click_ref",
)


def attribute_conversions(
    impressions: pa.Table,
    clicks: pa.Table,
    conversions: pa.Table,
    windows: Windows = Windows(),
    campaigns: pa.Table | None = None,
) -> pa.Table:
    """One row per conversion with its attribution, touch path and per-model credit.

    ``impressions`` needs impression_id, event_time, user_id, campaign_id; ``clicks``
    event_id, event_time, user_id, campaign_id; ``conversions`` CONVERSION_COLUMNS
    (``click_ref`` may be absent: no conversion then names its click).
    """
    if "click_ref" not in conversions.column_names:
        conversions = conversions.append_column(
            "click_ref", pa.nulls(conversions.num_rows, pa.string())
        )
    per_campaign = campaign_table(campaigns)
    has = per_campaign.num_rows > 0
    ct, vt = window_expr("w", "ct_us", has), window_expr("w", "vt_us", has)
    imp_vt = window_expr("iw", "vt_us", has)
    imp_join = "LEFT JOIN windows iw ON iw.campaign_id = i.campaign_id" if has else ""
    query = f"""
    WITH v AS (
      SELECT x.*, {ct} AS ct_us, {vt} AS vt_us
      FROM conversions x LEFT JOIN windows w ON w.campaign_id = x.campaign_id
    ), by_ref AS (
      SELECT v.event_id, k.event_id AS touch_id, k.event_time AS touch_time
      FROM v JOIN clicks k ON k.event_id = v.click_ref AND k.user_id = v.user_id
      WHERE k.event_time <= v.event_time
        AND epoch_us(k.event_time) >= epoch_us(v.event_time) - v.ct_us
    ), by_click AS (
      SELECT w.event_id, k.event_id AS touch_id, k.event_time AS touch_time
      FROM (SELECT * FROM v ANTI JOIN by_ref r ON r.event_id = v.event_id) w
        JOIN clicks k ON k.user_id = w.user_id AND k.campaign_id = w.campaign_id
      WHERE k.event_time <= w.event_time
        AND epoch_us(k.event_time) >= epoch_us(w.event_time) - w.ct_us
    ), unclicked AS (
      -- buckets at least 1 µs wide: a window of 0 matches the same instant only
      SELECT v.*, epoch_us(v.event_time) // greatest(v.vt_us, 1) - b.k AS bucket
      FROM v ANTI JOIN (SELECT event_id FROM by_click UNION SELECT event_id FROM by_ref) c
        ON c.event_id = v.event_id, (VALUES (0), (1)) b(k)
    ), imp AS (
      SELECT i.impression_id, i.event_time, i.user_id, i.campaign_id,
             epoch_us(i.event_time) // greatest({imp_vt}, 1) AS bucket
      FROM impressions i {imp_join}
      -- only users with a conversion no click earned (a few): one key to look up, before
      -- the bucket and the three-key join are worked out for every impression
      WHERE i.user_id IN (SELECT user_id FROM unclicked)
    ), by_view AS (
      SELECT u.event_id, i.impression_id AS touch_id, i.event_time AS touch_time
      FROM unclicked u JOIN imp i
        ON i.user_id = u.user_id AND i.campaign_id = u.campaign_id AND i.bucket = u.bucket
      WHERE i.event_time <= u.event_time
        AND epoch_us(i.event_time) >= epoch_us(u.event_time) - u.vt_us
    ), paths AS (
      -- list_sort of (time, id) structs: the order of ORDER BY touch_time, touch_id (both
      -- never null) without the engine's sorted aggregate, which sorts each group apart
      SELECT event_id, any_value(kind) AS attribution,
        list_sort(list({{'touch_time': touch_time, 'touch_id': touch_id}}))
          AS path
      FROM (SELECT *, 'click_id' AS kind FROM by_ref UNION ALL SELECT *, 'click' FROM by_click
            UNION ALL SELECT *, 'view' FROM by_view)
      GROUP BY event_id
    )
    SELECT v.event_id, v.event_time, v.user_id, v.campaign_id, v.ad_creative_id,
      v.conversion_type, v.conversion_value, v.currency,
      coalesce(p.attribution, 'none') AS attribution,
      coalesce(len(p.path), 0)::INTEGER AS touches,
      p.path[1].touch_id AS first_touch_id, p.path[1].touch_time AS first_touch_time,
      p.path[-1].touch_id AS last_touch_id, p.path[-1].touch_time AS last_touch_time,
      (epoch_us(v.event_time) - epoch_us(p.path[-1].touch_time)) / 1e6 AS seconds_to_convert,
      list_transform(p.path, lambda t, i: {{
        'touch_id': t.touch_id, 'touch_time': t.touch_time,
        'credit_last': CASE WHEN i = len(p.path) THEN 1.0 ELSE 0.0 END,
        'credit_first': CASE WHEN i = 1 THEN 1.0 ELSE 0.0 END,
        'credit_linear': 1.0 / len(p.path)}}) AS touch_path
    FROM v LEFT JOIN paths p ON p.event_id = v.event_id
    """
    result = engine.run(
        query,
        used_params(query, windows.params()),
        impressions=impressions,
        clicks=clicks,
        conversions=conversions,
        windows=per_campaign,
    )
    ordered = result.sort_by(sort_keys("campaign_id", "event_time", "event_id"))
    return ordered.cast(ATTRIBUTED_CONVERSIONS)
