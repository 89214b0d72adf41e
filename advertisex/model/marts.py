"""The mart tables: Arrow schemas and table specs (namespace ``marts``).

Below the kernels that produce these tables (every table schema lives in ``model``); the
registry in ``advertisex.model.schemas`` turns them into table specs. ``marts.state`` remembers
what the marts are built from: per curated table the position (Iceberg snapshot id)
last folded in, and the fingerprint of the matching rules.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from advertisex.model.columns import TS

ATTRIBUTED_CLICKS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_time", TS, nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("ad_creative_id", pa.string()),
        pa.field("match", pa.string(), nullable=False),  # exact | window | orphan
        pa.field("impression_id", pa.string()),
        pa.field("impression_time", TS),
        pa.field("seconds_to_click", pa.float64()),
        pa.field("country", pa.string()),
        pa.field("device_type", pa.string()),
        pa.field("website", pa.string()),
    ]
)

TOUCH = pa.struct(
    [
        pa.field("touch_id", pa.string()),
        pa.field("touch_time", TS),
        pa.field("credit_last", pa.float64()),
        pa.field("credit_first", pa.float64()),
        pa.field("credit_linear", pa.float64()),
    ]
)

ATTRIBUTED_CONVERSIONS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_time", TS, nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("ad_creative_id", pa.string()),
        pa.field("conversion_type", pa.string()),
        pa.field("conversion_value", pa.float64()),
        pa.field("currency", pa.string()),
        pa.field("attribution", pa.string(), nullable=False),  # click_id | click | view | none
        pa.field("touches", pa.int32(), nullable=False),
        pa.field("first_touch_id", pa.string()),
        pa.field("first_touch_time", TS),
        pa.field("last_touch_id", pa.string()),
        pa.field("last_touch_time", TS),
        pa.field("seconds_to_convert", pa.float64()),  # from the last touch
        pa.field("touch_path", pa.list_(TOUCH)),
    ]
)

KEYS = ("campaign_id", "ad_creative_id", "hour", "country", "device_type")
MEASURES = (
    "impressions",
    "spend_micros",
    "clicks",
    "orphan_clicks",
    "conversions",
    "conversion_value_micros",
    "conv_last",
    "conv_first",
    "conv_linear",
    "value_last",
    "value_first",
    "value_linear",
    "bid_requests",
    "bids",
    "floors",
    "wins",
    "bid_micros",
    "floor_micros",
    "won_bid_micros",
    "clearing_micros",
)
CAMPAIGN_HOURLY = pa.schema(
    [
        pa.field("campaign_id", pa.string()),
        pa.field("ad_creative_id", pa.string()),
        pa.field("hour", TS, nullable=False),
        pa.field("country", pa.string()),
        pa.field("device_type", pa.string()),
        *[pa.field(m, pa.int64(), nullable=False) for m in MEASURES],
        pa.field("unique_users", pa.int64(), nullable=False),
        pa.field("users", pa.large_binary()),
    ]
)
CAMPAIGN_DAILY = pa.schema(
    [
        pa.field("campaign_id", pa.string()),
        pa.field("day", pa.date32(), nullable=False),
        *[pa.field(m, pa.int64(), nullable=False) for m in MEASURES],
        pa.field("unique_users", pa.int64(), nullable=False),
        pa.field("users", pa.large_binary()),
    ]
)

STATE = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),
        pa.field("updated_at", TS, nullable=False),
    ]
)

ATTRIBUTED_CLICKS_TABLE = "marts.attributed_clicks"
ATTRIBUTED_CONVERSIONS_TABLE = "marts.attributed_conversions"
CAMPAIGN_HOURLY_TABLE = "marts.campaign_hourly"
CAMPAIGN_DAILY_TABLE = "marts.campaign_daily"
STATE_TABLE = "marts.state"
# The curated tables the marts are computed from; the state holds, for each, the snapshot
# they were last brought up to date with (``position:<table>``).
INPUTS = ("curated.impressions", "curated.clicks", "curated.conversions", "curated.bid_requests")

# The statistics (bounds, null counts) a mart's files keep besides those of its partition
# and sort columns (TableSpec.statistics): a mart is read by time and campaign, and an
# erasure passes over the files whose user bounds cannot hold a user. Every column's cost a
# backfill's first build ≈ 1 ms a file (pyiceberg's statistics of each), a file a day a mart.
_USERS = ("user_id",)

# TableSpec arguments (advertisex.model.schemas turns them into specs and registers them).
MART_TABLES: list[dict[str, Any]] = [
    {
        "name": "attributed_clicks",
        "schema": ATTRIBUTED_CLICKS,
        "id_column": "event_id",
        "sort_by": ("campaign_id", "event_time"),
        "statistics": _USERS,
    },
    {
        "name": "attributed_conversions",
        "schema": ATTRIBUTED_CONVERSIONS,
        "id_column": "event_id",
        "sort_by": ("campaign_id", "event_time"),
        "statistics": _USERS,
    },
    {
        "name": "campaign_hourly",
        "schema": CAMPAIGN_HOURLY,
        "partition_by_day": "hour",
        "sort_by": ("campaign_id", "hour"),
        "statistics": (),
    },
    {
        "name": "campaign_daily",
        "schema": CAMPAIGN_DAILY,
        "partition_by_day": None,
        "sort_by": ("campaign_id", "day"),
        "statistics": (),
    },
    {"name": "state", "schema": STATE, "id_column": "key", "partition_by_day": None},
]
# Time column that slices of each mart are cut on.
SLICE_COLUMN = {
    ATTRIBUTED_CLICKS_TABLE: "event_time",
    ATTRIBUTED_CONVERSIONS_TABLE: "event_time",
    CAMPAIGN_HOURLY_TABLE: "hour",
    CAMPAIGN_DAILY_TABLE: "day",
}

# A rollup key's bid measures, as the bids step hands them to the hourly rollup.
BID_MEASURES = pa.schema(
    [
        *(CAMPAIGN_HOURLY.field(key) for key in KEYS),
        *(pa.field(m, pa.int64()) for m in MEASURES[MEASURES.index("bid_requests") :]),
    ]
)
