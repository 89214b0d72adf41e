"""Campaign rollups: per campaign, creative, hour, country and device; and reach per day.

Partitionable by hour: a row of ``campaign_hourly`` only depends on the events of its
hour, so a set of hours can be recomputed alone and swapped into the mart. What lands
in an hour:

* impressions, spend and the unique-user sketch, by impression time;
* clicks by click time, with creative, country and device of the matched impression
  (orphan clicks: the click's own creative, no country or device);
* conversions and their value by conversion time (the conversion's own campaign and
  creative; country and device unknown);
* model credit (``conv_last`` … ``value_linear``) by *touch* time, on the touch's
  creative, country and device: what that hour's advertising earned;
* bid requests, bids, wins and prices by request time, on the request's dimensions —
  given as :func:`bid_measures` rows (the matched bids summed per rollup key), which sum
  again to the same figures: matched bids are one row a bid request, as many as the
  impressions, and a part of them (a bucket of auctions) need not be kept once summed.

Money and credit are integer micro-units (``spend_micros`` = Σ cost × 10⁶, a credit of
10⁶ is one whole conversion; linear credit hands out the remainder of 10⁶ / n to the
first touches) so that sums are exact in any order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels import auctions, sketch
from advertisex.kernels.correlate import IMPRESSION_COLUMNS, MATCH_BIDS_SQL, sort_keys
from advertisex.kernels.groups import rank_groups, ranks, summed
from advertisex.kernels.shown import shown_counts
from advertisex.kernels.windows import Windows
from advertisex.model.columns import TS
from advertisex.model.marts import BID_MEASURES, CAMPAIGN_DAILY, CAMPAIGN_HOURLY, KEYS, MEASURES
from advertisex.util import engine

# An event's hour, by its microseconds' arithmetic: date_trunc through the engine's
# calendar was a third of counting the impressions (engine.utc_hour).
_HOUR = engine.utc_hour("event_time")

# The clicks', conversions' and credit's parts of a rollup (each summed per key and hour);
# :func:`campaign_hourly` adds them to the impressions' part and the bids' per key.
_RESPONSES_SQL = f"""
WITH clk AS (
  SELECT campaign_id, ad_creative_id, {_HOUR} AS hour, country,
    device_type, count(*) AS clicks, count(*) FILTER (match = 'orphan') AS orphan_clicks
  FROM clicks GROUP BY ALL
), cnv AS (
  SELECT campaign_id, ad_creative_id, {_HOUR} AS hour,
    NULL::VARCHAR AS country, NULL::VARCHAR AS device_type, count(*) AS conversions,
    sum(CAST(round(coalesce(conversion_value, 0) * 1e6) AS BIGINT)) AS conversion_value_micros
  FROM conversions GROUP BY ALL
), touch AS (
  SELECT campaign_id, attribution, value, unnest(touch_path).touch_id AS touch_id,
    unnest(touch_path).touch_time AS touch_time, unnest(range(1, touches + 1)) AS i, touches AS n
  FROM (SELECT *, CAST(round(coalesce(conversion_value, 0) * 1e6) AS BIGINT) AS value
        FROM conversions WHERE touches > 0)
), cred AS (
  SELECT t.campaign_id, coalesce(k.ad_creative_id, v.ad_creative_id) AS ad_creative_id,
    {engine.utc_hour("t.touch_time")} AS hour, coalesce(k.country, v.country) AS country,
    coalesce(k.device_type, v.device_type) AS device_type,
    sum(CASE WHEN i = n THEN 1000000 ELSE 0 END) AS conv_last,
    sum(CASE WHEN i = 1 THEN 1000000 ELSE 0 END) AS conv_first,
    sum(1000000 // n + CASE WHEN i <= 1000000 % n THEN 1 ELSE 0 END) AS conv_linear,
    sum(CASE WHEN i = n THEN value ELSE 0 END) AS value_last,
    sum(CASE WHEN i = 1 THEN value ELSE 0 END) AS value_first,
    sum(value // n + CASE WHEN i <= value % n THEN 1 ELSE 0 END) AS value_linear
  FROM touch t
  LEFT JOIN (SELECT DISTINCT ON (event_id) event_id, ad_creative_id, country, device_type
             FROM touch_clicks) k
    ON t.attribution IN ('click_id', 'click') AND k.event_id = t.touch_id
  -- Only the view touches' impressions go into the join's table (a few among millions).
  LEFT JOIN (SELECT * FROM touch_impressions
             WHERE impression_id IN (SELECT touch_id FROM touch WHERE attribution = 'view')) v
    ON t.attribution = 'view' AND v.impression_id = t.touch_id
  GROUP BY ALL
)
SELECT * FROM clk UNION ALL BY NAME SELECT * FROM cnv UNION ALL BY NAME SELECT * FROM cred
"""
# The impressions' part of a rollup row (:func:`shown_hourly`): users' hashes sorted here,
# on the engine's threads, so that sketch.from_lists only drops repeats (list_sort of the
# list, not list(… ORDER BY …), which buffers every row again).
_SHOWN_SQL = f"""
SELECT campaign_id, ad_creative_id, {_HOUR} AS hour, country,
  device_type, count(*) AS impressions,
  sum(CAST(round(coalesce(cost, 0) * 1e6) AS BIGINT)) AS spend_micros,
  list_sort(list(user_hash)) AS user_hashes
FROM impressions GROUP BY ALL
"""
_EMPTY_SKETCH = sketch.EXACT.to_bytes(8, "little")  # no user at all
# The rows' order (the engine's ORDER BY of these, nulls last, by Arrow's sort: see
# kernels.correlate.sort_keys).
_ORDER = sort_keys("campaign_id", "hour", "ad_creative_id", "country", "device_type")


# The impressions' columns campaign_hourly reads (as impressions and as touch impressions).
ROLLUP_COLUMNS = tuple(c for c in IMPRESSION_COLUMNS if c not in ("website", "auction_id"))


def _ordered(rows: pa.Table) -> pa.Table:
    return rows.sort_by(_ORDER)


_BID_SQL = f"""
SELECT campaign_id, ad_creative_id, {_HOUR} AS hour, country,
  device_type, count(*) AS bid_requests, count(bid_price) AS bids,
  count(floor_price) AS floors, count(*) FILTER (won) AS wins,
  CAST(sum(CAST(round(bid_price * 1e6) AS BIGINT)) AS BIGINT) AS bid_micros,
  CAST(sum(CAST(round(floor_price * 1e6) AS BIGINT)) AS BIGINT) AS floor_micros,
  CAST(sum(CAST(round(bid_price * 1e6) AS BIGINT)) FILTER (won) AS BIGINT) AS won_bid_micros,
  CAST(sum(CAST(round(clearing_cpm * 1e6) AS BIGINT)) FILTER (won) AS BIGINT) AS clearing_micros
FROM {{source}} GROUP BY ALL
"""


def bid_measures(matched: pa.Table) -> pa.Table:
    """Matched bids (``kernels.correlate.match_bids``) summed per rollup key and hour: what
    :func:`campaign_hourly` takes as its bids. Rows of one key from several parts of the
    bids add up to the rows of the whole (counts and integer micro-units)."""
    return _ordered(engine.run(_BID_SQL.format(source="bids"), bids=matched)).cast(BID_MEASURES)


def auction_measures(
    bids: pa.Table, impressions: pa.Table, windows: Windows = Windows()
) -> pa.Table:
    """:func:`bid_measures` of ``kernels.correlate.match_bids(bids, impressions, windows)``
    in one engine query: the matched bids are summed where they are made, never handed
    back as rows, sorted and scanned again (the demo's 441 k matched bids: ≈ 0.2 s of the
    marts' critical path). Same rows: the sums are integers, whatever the order.

    Matched and summed in NumPy (``kernels.auctions``: the engine's ``GROUP BY`` with
    ``min(struct)`` was most of the 2 M set's 0.3 s step); by the engine where a price is
    beyond the sums (its error, as before)."""
    rows = auctions.measures(bids, impressions, windows.auction_us)
    if rows is not None:
        return rows.cast(BID_MEASURES)
    query = f"WITH matched AS ({MATCH_BIDS_SQL}) {_BID_SQL.format(source='matched')}"
    rows = engine.run(query, {"auction_us": windows.auction_us}, bids=bids, impressions=impressions)
    return _ordered(rows).cast(BID_MEASURES)


def shown_hourly(impressions: pa.Table) -> pa.Table:
    """What :func:`campaign_hourly` counts of ``impressions``: per rollup key, the
    impressions, their spend and their users' sketch (``users``), in no order.

    It needs no click, conversion or bid: a rollup may count its impressions while those
    are still being matched, and hand the rows to :func:`campaign_hourly` as ``shown``.
    """
    counted = shown_counts(impressions)  # in NumPy: ≈ 3× less CPU than the engine's
    if counted is not None:
        return counted
    user_hash = sketch.user_hashes(impressions.column("user_id"))
    counted = engine.run(_SHOWN_SQL, impressions=impressions.append_column("user_hash", user_hash))
    # Each row's list of user hashes (every impression's) becomes its sketch here, before
    # any ordering: ordered with the lists, their values were gathered again (0.13 s of
    # the 2 M set's 0.7 s rollup).
    users = sketch.from_lists(counted.column("user_hashes"))
    return counted.drop_columns(["user_hashes"]).append_column("users", users)


def campaign_hourly(
    impressions: pa.Table,
    clicks: pa.Table,
    conversions: pa.Table,
    bids: pa.Table,
    hours: pa.Array | None = None,
    touch_impressions: pa.Table | None = None,
    touch_clicks: pa.Table | None = None,
    shown: pa.Table | None = None,
) -> pa.Table:
    """The ``campaign_hourly`` rows of ``hours`` (all hours present when None).

    ``impressions``: curated columns incl. user_id and cost; ``clicks``: attributed
    clicks; ``conversions``: attributed conversions (their touch paths may reach into
    other hours: only credit landing in ``hours`` is counted); ``bids``: :func:`bid_measures`
    of the matched bids. ``touch_impressions`` (default: ``impressions``) are where
    view-through touches find their creative, country and device; ``touch_clicks``
    (default: ``clicks``, a click may be there more than once) where click touches do.
    ``shown``: :func:`shown_hourly` of ``impressions``, when counted already.

    Rows of the same key computed from parts of the inputs merge into the rows of the
    whole with :func:`merge_hourly`.
    """
    answered = engine.run(
        _RESPONSES_SQL,
        touch_impressions=impressions if touch_impressions is None else touch_impressions,
        clicks=clicks,
        touch_clicks=clicks if touch_clicks is None else touch_clicks,
        conversions=conversions,
    )
    parts = [shown_hourly(impressions) if shown is None else shown, answered, bids]
    keys = pa.concat_tables([p.select(KEYS).cast(_KEY_SCHEMA) for p in parts])
    measures = {m: np.concatenate([_measure(p, m) for p in parts]) for m in MEASURES}
    # A key's impressions are one row of ``shown`` at most: its sketch is that row's.
    users = pa.chunked_array(
        [parts[0].column("users").cast(pa.large_binary()).combine_chunks()]
        + [pa.nulls(p.num_rows, pa.large_binary()) for p in parts[1:]]
    )
    if hours is not None:
        wanted = pc.is_in(keys.column("hour"), value_set=pa.array(hours).cast(TS))
        keys, users = keys.filter(wanted), users.filter(wanted)
        kept = np.asarray(wanted, dtype=bool)
        measures = {m: values[kept] for m, values in measures.items()}
    order, starts = key_groups(keys, [k for k, _ in _ORDER])
    if not len(starts):
        return CAMPAIGN_HOURLY.empty_table()
    columns = _keys_and_sums(keys, measures.__getitem__, order, starts)
    group_users = _first_valid(users, order, starts)
    columns["unique_users"] = pa.array(sketch.estimate(group_users), pa.int64())
    columns["users"] = group_users
    return pa.table(columns).cast(CAMPAIGN_HOURLY)


# The rollup keys' types (those of every part: the engine's and the marts' schema agree).
_KEY_SCHEMA = pa.schema([CAMPAIGN_HOURLY.field(k) for k in KEYS])


def _keys_and_sums(
    keys: pa.Table,
    measure: Callable[[str], np.ndarray],
    order: np.ndarray,
    starts: np.ndarray,
) -> dict[str, pa.Array]:
    """Each group's keys (those of its first row) and :data:`MEASURES` summed
    (:func:`_summed`; ``measure(m)``: a measure's values, asked for one at a time), the
    groups as :func:`key_groups` gives them."""
    firsts = pa.array(order[starts])
    columns: dict[str, pa.Array] = {k: keys.column(k).take(firsts) for k in keys.column_names}
    columns.update({m: pa.array(summed(measure(m)[order], starts, m)) for m in MEASURES})
    return columns


def _measure(part: pa.Table, measure: str) -> np.ndarray:
    """A rollup part's ``measure`` as int64 values: 0 where the part does not have it, or
    for a null (the engine's ``coalesce(sum(m), 0)``). The engine's sums (HUGEINT, decimals
    to Arrow) are cast checked: one past 64 bits raises, as its ``CAST(… AS BIGINT)`` did.
    A measure at a time, never a matrix of them all: a matrix of the 2 M set's rollup is
    28 MB a copy, and the processor's allocator maps a block that size afresh each time
    (``util.allocator``: 4 MiB), its pages faulted in — the step took longer in the run
    than the engine's sums it replaced."""
    if measure not in part.column_names:
        return np.zeros(part.num_rows, dtype=np.int64)
    try:
        values = part.column(measure).cast(pa.int64())
    except pa.ArrowInvalid as error:  # a sum of the engine's past 64 bits
        raise OverflowError(f"a rollup key's {measure} passes 64 bits") from error
    return np.asarray(pc.fill_null(values, 0), dtype=np.int64)


def _first_valid(values: pa.ChunkedArray, order: np.ndarray, starts: np.ndarray) -> pa.Array:
    """Each group's first non-null value of ``values`` (rows in ``order``, groups beginning
    at ``starts``), the empty sketch where a group has none."""
    valid = np.asarray(pc.is_valid(values), dtype=bool)[order]
    positions = np.where(valid, np.arange(len(order)), len(order))
    first = np.minimum.reduceat(positions, starts)
    rows = order[np.minimum(first, len(order) - 1)]
    picked = values.take(pa.array(rows, mask=first >= len(order)))
    return pc.fill_null(picked, pa.scalar(_EMPTY_SKETCH, pa.large_binary())).combine_chunks()


def key_groups(rows: pa.Table, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``rows``' row numbers ordered by ``keys`` (ascending, nulls last: the engine's ORDER
    BY of them, ties in row order), and where each distinct combination of keys begins in
    that order — the engine's GROUP BY (nulls a group), in a sort of one integer a row.

    Each key becomes its rank among its distinct values; the ranks are combined into one
    integer where they fit in 63 bits (a rollup's keys do), else sorted key by key. The
    2 M set's hourly rollup (170 k rows of parts into 90 k keys) took 0.25 s of CPU with
    the engine's GROUP BY (twenty sums to HUGEINT a row), 0.09 s grouped here.

    >>> t = pa.table({"c": ["b", None, "a", "b"], "n": [2, 1, None, 2]})
    >>> order, starts = key_groups(t, ["c", "n"])
    >>> order.tolist(), starts.tolist()
    ([2, 0, 3, 1], [0, 1, 3])
    """
    if not rows.num_rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return rank_groups([ranks(rows.column(k)) for k in keys])


_NAMED_CLICKS_SQL = """
SELECT DISTINCT ON (t.campaign_id, k.event_id) k.* REPLACE (t.campaign_id AS campaign_id)
FROM (SELECT campaign_id, unnest(touch_path).touch_id AS touch_id
      FROM conversions WHERE attribution = 'click_id') t
JOIN clicks k ON k.event_id = t.touch_id AND k.campaign_id <> t.campaign_id
"""


def named_clicks(clicks: pa.Table, conversions: pa.Table) -> pa.Table:
    """The attributed ``clicks`` that ``conversions`` of *another* campaign named as their
    touch (``attribution = 'click_id'``: a postback's click id), each under the campaign
    of a conversion that named it (once per campaign).

    A rollup split by campaign gives each part these besides its own clicks
    (``campaign_hourly``'s ``touch_clicks``): a conversion's credit lands on its named
    click's creative, country and device wherever that click's campaign went. Window
    touches (clicks, views) are always of the conversion's own campaign.
    """
    if not conversions.num_rows or not clicks.num_rows:
        return clicks.slice(0, 0)
    named = engine.run(_NAMED_CLICKS_SQL, clicks=clicks, conversions=conversions)
    return named.select(clicks.column_names).cast(clicks.schema)


# Columns that only impressions feed; the rest of a row comes from responses and bids.
IMPRESSION_MEASURES = ("impressions", "spend_micros", "unique_users", "users")


def with_impression_part(responses: pa.Table, shown: pa.Table) -> pa.Table:
    """Rows whose impression columns come from ``shown`` (existing rows of the same hours)
    and every other measure from ``responses`` (rows computed without impressions).

    Equal to recomputing the hours from scratch when their impressions did not change.
    """
    keys = ("campaign_id", "ad_creative_id", "hour", "country", "device_type")
    on = " AND ".join(f"r.{k} IS NOT DISTINCT FROM s.{k}" for k in keys)
    picks = [f"coalesce(r.{k}, s.{k}) AS {k}" for k in keys]
    for m in MEASURES:
        side = "s" if m in IMPRESSION_MEASURES else "r"
        picks.append(f"coalesce({side}.{m}, 0) AS {m}")
    picks += ["coalesce(s.unique_users, 0) AS unique_users", "coalesce(s.users, $empty) AS users"]
    query = f"""
    SELECT {", ".join(picks)}
    FROM responses r FULL JOIN (SELECT * FROM shown WHERE impressions > 0) s ON {on}
    ORDER BY campaign_id NULLS LAST, hour, ad_creative_id NULLS LAST, country NULLS LAST,
      device_type NULLS LAST
    """
    merged = engine.run(query, {"empty": _EMPTY_SKETCH}, responses=responses, shown=shown)
    return merged.cast(CAMPAIGN_HOURLY)


def campaign_daily(hourly: pa.Table) -> pa.Table:
    """Per campaign and UTC day: the hourly measures summed, and reach — the union of the
    day's hourly user sketches (distinct users do not add up; sketches merge)."""
    if hourly.num_rows == 0:
        return CAMPAIGN_DAILY.empty_table()
    micros = np.asarray(pc.fill_null(hourly.column("hour").cast(pa.int64()), 0), dtype=np.int64)
    valid = np.asarray(pc.is_valid(hourly.column("hour")), dtype=bool)
    day = pa.array((micros // _DAY_MICROS).astype(np.int32), pa.date32(), mask=~valid)
    keys = pa.table({"campaign_id": hourly.column("campaign_id"), "day": day})
    return _grouped(hourly, keys).cast(CAMPAIGN_DAILY)


_DAY_MICROS = 86_400_000_000  # a UTC day (``CAST(hour AS DATE)`` in UTC)


def merge_hourly(parts: list[pa.Table]) -> pa.Table:
    """``campaign_hourly`` rows computed from parts of the inputs (say, of the impressions
    a bucket at a time) merged into the rows of the whole: measures summed per key, user
    sketches united (to the same bytes whatever the parts), in the kernel's row order."""
    rows = pa.concat_tables([p.cast(CAMPAIGN_HOURLY) for p in parts])
    if rows.num_rows == 0:
        return CAMPAIGN_HOURLY.empty_table()
    return (
        _grouped(rows, rows.select([k for k, _ in _ORDER]))
        .select(CAMPAIGN_HOURLY.names)
        .cast(CAMPAIGN_HOURLY)
    )


def _grouped(rows: pa.Table, keys: pa.Table) -> pa.Table:
    """Hourly-shaped ``rows`` summed per distinct row of ``keys`` (a row a row of ``rows``,
    the groups' columns), in the keys' order (ascending, nulls last: :func:`key_groups`):
    the keys' columns, then the measures summed, the groups' distinct users estimated and
    their user sketches merged."""
    order, starts = key_groups(keys, keys.column_names)
    columns = _keys_and_sums(keys, functools.partial(_measure, rows), order, starts)
    begins = np.zeros(rows.num_rows, dtype=np.int64)
    begins[starts] = 1
    group_of_row = np.empty(rows.num_rows, dtype=np.int64)
    group_of_row[order] = np.cumsum(begins) - 1
    users = sketch.merge(group_of_row, rows.column("users"), len(starts))
    columns["unique_users"] = pa.array(sketch.estimate(users), pa.int64())
    columns["users"] = users
    return pa.table(columns)
