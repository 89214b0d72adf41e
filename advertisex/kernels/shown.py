"""The impressions' part of the hourly rollup — per campaign, creative, hour, country and
device: the impressions, their spend and their users' sketch — counted in NumPy: the rows
of ``kernels.rollup``'s ``_SHOWN_SQL`` (``shown_hourly``), in the rollup's key order.

The engine grouped the 2 M set's 1.1 M impressions with a list of user hashes a key
(0.28-0.40 s of CPU); here two sorts of one 64-bit integer a row do it: the key's rank and
the row number (the groups, and the rows in them), then the group and the rank of the
user's hash among the distinct users' (each group's hashes ascending, as the sketch stores
them).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels import sketch
from advertisex.kernels.groups import hour_ranks, micros_of, rank_groups, ranks, summed

_HOUR_US = 3_600_000_000
# The rollup's keys in its order (``kernels.rollup._ORDER``).
_ORDER_KEYS = ("campaign_id", "hour", "ad_creative_id", "country", "device_type")
_TEXT_KEYS = ("campaign_id", "ad_creative_id", "country", "device_type")


def shown_counts(impressions: pa.Table) -> pa.Table | None:
    """``shown_hourly``'s rows of ``impressions`` (a row a key: its columns, ``impressions``,
    ``spend_micros`` and ``users``); None where the engine's query is left to answer: no
    rows, a missing time or user, a cost beyond 64 bits of micro-units, or too many
    distinct users and keys to sort as one integer."""

    n = impressions.num_rows
    times = impressions.column("event_time")
    users = impressions.column("user_id")
    if not n or times.null_count or users.null_count:
        return None
    hours = np.floor_divide(np.asarray(times.cast(pa.int64()), dtype=np.int64), _HOUR_US)
    key_ranks = {k: ranks(impressions.column(k)) for k in _TEXT_KEYS}
    key_ranks["hour"] = hour_ranks(hours)
    order, starts = rank_groups([key_ranks[key] for key in _ORDER_KEYS])
    groups = len(starts)
    cost = impressions.column("cost")
    costs = np.asarray(pc.fill_null(cost.cast(pa.float64()), 0.0), dtype=np.float64)
    spend = micros_of(costs * 1e6, np.ones(n, dtype=bool))
    if spend is None:
        return None
    # Each user's hash (MD5, once per distinct user) and its rank among them.
    encoded = pc.dictionary_encode(users.combine_chunks())
    hashes = np.asarray(sketch.user_hashes(encoded.dictionary), dtype=np.uint64)
    by_hash = np.argsort(hashes, kind="stable")
    hash_rank = np.empty(len(hashes), dtype=np.int64)
    hash_rank[by_hash] = np.arange(len(hashes))
    if groups * max(1, len(hashes)) >= 1 << 63:
        return None
    group_of = np.zeros(n, dtype=np.int64)
    group_of[starts[1:]] = 1
    np.cumsum(group_of, out=group_of)  # each ordered row's group
    user_rank = hash_rank[np.asarray(encoded.indices, dtype=np.int64)[order]]
    pairs = np.sort(group_of * len(hashes) + user_rank)
    users_sketch = sketch.from_pairs(
        pairs // len(hashes), hashes[by_hash][pairs % len(hashes)], groups
    )
    firsts = pa.array(order[starts])
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for key in ("campaign_id", "ad_creative_id", "hour", "country", "device_type"):
        if key == "hour":
            hour = pa.array(hours[order[starts]] * _HOUR_US, pa.int64())
            columns[key] = hour.cast(times.type)
        else:
            columns[key] = impressions.column(key).take(firsts)
    columns["impressions"] = pa.array(np.diff(np.r_[starts, n]), pa.int64())
    columns["spend_micros"] = pa.array(summed(spend[order], starts, "spend_micros"), pa.int64())
    columns["users"] = users_sketch
    return pa.table(columns)
