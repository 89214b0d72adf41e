"""Source contracts: which input fields each source knows, their aliases, and required ones.

The decoders and the standardize kernels read these; nothing else hard-codes field names.
"""

from __future__ import annotations

from datetime import UTC, datetime

IMPRESSION_FIELDS = (
    "impression_id",
    "timestamp",
    "ad_creative_id",
    "campaign_id",
    "user_id",
    "website",
    "placement",
    "device_type",
    "user_agent",
    "ip",
    "country",
    "cost",
    "auction_id",
)
IMPRESSION_REQUIRED = ("timestamp", "ad_creative_id", "user_id", "website")

CLICK_FIELDS = (
    "event_id",
    "timestamp",
    "user_id",
    "campaign_id",
    "event_type",
    "impression_id",
    "ad_creative_id",
    "conversion_type",
    "conversion_value",
    "currency",
    "click_ref",  # a conversion's click: the click id its postback carried (exact attribution)
)
CLICK_REQUIRED = ("timestamp", "user_id", "campaign_id", "event_type")
CLICK_ALIASES = {
    "event_timestamp": "timestamp",
    "ad_campaign_id": "campaign_id",
    "click_id": "event_id",
    "conversion_id": "event_id",
}
EVENT_TYPES = ("click", "conversion")
CONVERSION_TYPES = ("signup", "purchase", "install", "lead", "other")
DEVICE_TYPES = ("desktop", "mobile", "tablet", "ctv", "other")
MAX_ID_LENGTH = 128  # ids are opaque tokens: no whitespace or control characters either
# The largest amounts a record may carry (in its currency): a price or cost, and a conversion
# value. The marts sum money as 64-bit integers of micro-units (exact in any order), and an
# amount past these is no real one — most often a price sent in micro-units or cents. A
# record with one is quarantined (``amount_too_large``): accepted, a single impression of
# cost 9.3e12 made every later marts update fail, the lake's marts stuck behind it. Within
# them a rollup key's sums pass 64 bits only after thousands of records at the bound.
MAX_PRICE = 1_000_000
MAX_CONVERSION_VALUE = 1_000_000_000
# The earliest event time a record may carry: no ad was served before 1970 (epoch 0 is
# accepted, a producer's "no time" more often than not). Earlier ones are quarantined
# (``timestamp_too_old``) whatever ``processor.max_event_age_days`` says: accepted, an
# impression of 0001-01-01 made every later incremental marts update fail, the hour
# before its own being before the calendar's first.
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)

BID_FIELDS = (
    "auction_id",
    "timestamp",
    "user_id",
    "exchange",
    "site_domain",
    "device_type",
    "country",
    "floor_price",
    "ad_targeting",
    "bid_price",
    "campaign_id",
    "ad_creative_id",
)
BID_REQUIRED = ("auction_id", "timestamp", "user_id")

# First key of a record the collector could not read (a tracking request with a broken
# query string): the JSON framer makes its value the record's framing error, so the
# processor quarantines the record with that reason code and its raw text.
INTAKE_ERROR = "_intake_error"
