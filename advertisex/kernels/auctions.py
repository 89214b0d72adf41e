"""Bid requests matched to the impressions that won them and summed per rollup key, in
NumPy: the rows of the engine's ``MATCH_BIDS_SQL`` summed by ``kernels.rollup``'s
``_BID_SQL``, the same tie rules.

The engine spent most of the 2 M set's auctions step (≈ 180 of 317 ms) in its
``GROUP BY (auction_id, exchange)`` with ``min(struct)``; here the auction ids of bids and
impressions become shared integer codes, the impressions are sorted once by (code, time,
id, cost) — so that within an auction the earliest position in that order *is* the
struct's minimum — and each bid looks up the impressions of its code by a binary search.

The rules, as the query has them:

* an impression wins the bids of its auction id at most ``auction_us`` away from it in
  time; an impression without an auction id wins nothing;
* a bid's (auction id, exchange) — a missing exchange its own value — is won when any
  bid of that pair has an impression in its window, and every bid of the pair takes the
  same impression: the earliest, then the least id, then the least cost;
* the clearing price is that impression's cost × 1000 (a CPM).

Prices become micro-units as ``CAST(round(p * 1e6) AS BIGINT)`` does (halves away from
zero); where a price the sums read is not a finite number within 64 bits the kernel
answers None and the caller runs the query, whose error is the engine's.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex import native
from advertisex.kernels.groups import hour_ranks, micros_of, rank_groups, ranks, summed
from advertisex.model.marts import BID_MEASURES, KEYS

_HOUR_US = 3_600_000_000
# The rollup's keys in their order (``kernels.rollup._ORDER``): the groups come out sorted so.
_ORDER_KEYS = ["campaign_id", "hour", "ad_creative_id", "country", "device_type"]


def winners(bids: pa.Table, impressions: pa.Table, auction_us: int) -> np.ndarray | None:
    """For each bid, the row of ``impressions`` that won its auction, or -1; None where two
    auction ids share a hash (a chance of ≈ 2⁻⁶⁴ a pair: left to the engine)."""
    nb = bids.num_rows
    ids = impressions.column("auction_id")
    shown_rows = np.flatnonzero(np.asarray(pc.is_valid(ids), dtype=bool))
    if not nb or not len(shown_rows):
        return np.full(nb, -1, dtype=np.int64)
    bid_ids = bids.column("auction_id")
    bid_key, shown_key, hashed = _auction_keys(bid_ids, ids, shown_rows)
    # The impressions by key, and within a key in the struct's order (time, id, cost; nulls
    # last): an auction's winner is then its first position in the window of its bids.
    order = np.argsort(shown_key)
    sorted_key = shown_key[order]
    same = sorted_key[1:] == sorted_key[:-1]
    tied = np.zeros(len(order), dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    if tied.any():  # replayed renders: sorted again, by the rules, among themselves
        at = np.flatnonzero(tied)
        rows = pa.array(shown_rows[order[at]])
        rules = pa.table(
            {
                "key": sorted_key[at],
                "t": impressions.column("event_time").take(rows),
                "id": impressions.column("impression_id").take(rows),
                "cost": impressions.column("cost").take(rows),
            }
        )
        again = pc.sort_indices(rules, [(k, "ascending") for k in rules.column_names])
        order[at] = order[at][np.asarray(again, dtype=np.int64)]
    shown_sorted = shown_rows[order]  # impressions' rows, in that order
    n = len(order)
    ends = np.r_[np.flatnonzero(~same) + 1, n]
    end_of = np.repeat(ends, np.diff(np.r_[0, ends]))  # where each position's key ends
    # The bids by key, each bid's impressions found by a merge of the two orders.
    bid_order = np.argsort(bid_key)
    key = bid_key[bid_order]
    low = _starts(sorted_key, key)
    found = (low < n) & (sorted_key[np.minimum(low, n - 1)] == key)
    found &= np.asarray(pc.is_valid(bid_ids), dtype=bool)[bid_order]  # no id: no join
    if hashed:  # each bid's id that of its key's first impression, the bids in row order
        head = np.full(nb, -1, dtype=np.int64)  # (taken in key order: 3× the time)
        head[bid_order[found]] = shown_sorted[low[found]]
        joined = np.flatnonzero(head >= 0)
        if not _same_ids(bid_ids, ids, joined, head[joined]):
            return None
    if hashed and tied.any():  # each replay's id that of its key's first impression
        heads = shown_sorted[_heads(at, ends)]
        if not _same_ids(ids, ids, shown_sorted[at], heads):
            return None
    counts = np.where(found, end_of[np.minimum(low, n - 1)] - low, 0)
    pair = np.repeat(np.arange(nb, dtype=np.int64), counts)  # a bid's position in bid_order
    firsts = np.cumsum(counts) - counts
    pos = low[pair] + (np.arange(len(pair), dtype=np.int64) - firsts[pair])
    shown_t, shown_valid = _micros(impressions.column("event_time"))
    bid_t, bid_valid = _micros(bids.column("event_time"))
    bid_row = bid_order[pair]
    near = (
        shown_valid[shown_sorted[pos]]
        & bid_valid[bid_row]
        & (np.abs(shown_t[shown_sorted[pos]] - bid_t[bid_row]) <= auction_us)
    )
    # A bid's (auction, exchange) pair: its key's first position and its exchange's code.

    exchange, exchanges = ranks(bids.column("exchange"))
    group = np.where(found, low * exchanges + exchange[bid_order], 0)
    if n * exchanges <= 4 * (n + nb):  # a slot for every pair there could be
        first = np.full(n * exchanges, n, dtype=np.int64)
    else:
        groups, group = np.unique(group, return_inverse=True)
        first = np.full(len(groups), n, dtype=np.int64)
    np.minimum.at(first, group[pair[near]], pos[near])
    won = np.where(found, first[group], n)
    winner = np.full(nb, -1, dtype=np.int64)
    winner[bid_order] = np.where(won < n, shown_sorted[np.minimum(won, n - 1)], -1)
    return winner


def measures(bids: pa.Table, impressions: pa.Table, auction_us: int) -> pa.Table | None:
    """The matched bids' measures per rollup key (``kernels.rollup.BID_MEASURES``' columns,
    groups in the rollup's order, not yet cast); None where the engine's query is left
    to answer (it raises): a price out of the sums' reach, a bid without a time — or two
    auction ids of one hash (:func:`winners`)."""

    if not bids.num_rows:
        return BID_MEASURES.empty_table()
    if bids.column("event_time").null_count:  # no hour: the engine's cast refuses the rows
        return None
    winner = winners(bids, impressions, auction_us)
    if winner is None:
        return None
    won = winner >= 0
    cost = impressions.column("cost").take(pa.array(winner, mask=~won))
    cost_v, cost_ok = _floats(cost)
    bid_v, bid_ok = _floats(bids.column("bid_price"))
    floor_v, floor_ok = _floats(bids.column("floor_price"))
    cost_ok &= won
    micros = {
        "bid": micros_of(bid_v * 1e6, bid_ok),
        "floor": micros_of(floor_v * 1e6, floor_ok),
        "clearing": micros_of((cost_v * 1000) * 1e6, cost_ok),
    }
    if any(m is None for m in micros.values()):
        return None
    at, _ = _micros(bids.column("event_time"))  # never null (a bid's time is required)
    hours = np.floor_divide(at, _HOUR_US)
    key_ranks = {k: ranks(bids.column(k)) for k in _ORDER_KEYS if k != "hour"}
    key_ranks["hour"] = hour_ranks(hours)
    order, starts = rank_groups([key_ranks[k] for k in _ORDER_KEYS])
    firsts = pa.array(order[starts])
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for key in KEYS:
        if key == "hour":
            hour = pa.array(hours[order[starts]] * _HOUR_US, pa.int64())
            columns[key] = hour.cast(bids.column("event_time").type)
        else:
            columns[key] = bids.column(key).take(firsts)

    def counted(flags: np.ndarray) -> np.ndarray:
        return np.add.reduceat(flags[order].astype(np.int64), starts)

    def measure_sums(values: np.ndarray | None, ok: np.ndarray, name: str) -> pa.Array:
        assert values is not None
        sums = summed(np.where(ok, values, 0)[order], starts, name)
        return pa.array(sums, pa.int64(), mask=counted(ok) == 0)  # SUM of none: NULL

    columns["bid_requests"] = pa.array(np.diff(np.r_[starts, len(order)]), pa.int64())
    columns["bids"] = pa.array(counted(bid_ok), pa.int64())
    columns["floors"] = pa.array(counted(floor_ok), pa.int64())
    columns["wins"] = pa.array(counted(won), pa.int64())
    columns["bid_micros"] = measure_sums(micros["bid"], bid_ok, "bid_micros")
    columns["floor_micros"] = measure_sums(micros["floor"], floor_ok, "floor_micros")
    columns["won_bid_micros"] = measure_sums(micros["bid"], bid_ok & won, "won_bid_micros")
    columns["clearing_micros"] = measure_sums(micros["clearing"], cost_ok, "clearing_micros")
    return pa.table(columns)


def _auction_keys(
    bid_ids: pa.ChunkedArray, ids: pa.ChunkedArray, shown_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The auction ids of the bids and of the impressions at ``shown_rows`` as 64-bit keys,
    equal for equal ids, and whether they are hashes (XXH3 by the compiled helpers: a few
    ms, where Arrow's codes took ≈ 0.1 s; two ids may then share one, which the caller
    checks) rather than codes."""
    bid_hashes = native.text_hashes(bid_ids)
    hashes = native.text_hashes(ids) if bid_hashes is not None else None
    if bid_hashes is not None and hashes is not None:
        return bid_hashes, hashes[shown_rows], True
    codes = _shared_codes(bid_ids, ids.take(pa.array(shown_rows))).astype(np.uint64)
    return codes[: len(bid_ids)], codes[len(bid_ids) :], False


def _starts(ordered: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """``np.searchsorted(ordered, needles)`` of ascending 64-bit keys and needles."""
    found = native.sorted_starts(ordered, needles)
    return np.searchsorted(ordered, needles) if found is None else found


def _same_ids(
    left: pa.ChunkedArray, right: pa.ChunkedArray, left_rows: np.ndarray, right_rows: np.ndarray
) -> bool:
    """Whether ``left`` at ``left_rows`` holds the texts ``right`` holds at ``right_rows``."""
    if not len(left_rows):
        return True
    same = pc.equal(left.take(pa.array(left_rows)), right.take(pa.array(right_rows)))
    return bool(pc.all(same).as_py())


def _heads(positions: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The first position of the run each of ``positions`` lies in (runs ending at ``ends``)."""
    return np.r_[0, ends[:-1]][np.searchsorted(ends, positions, "right")]


def _shared_codes(left: pa.ChunkedArray, right: pa.ChunkedArray) -> np.ndarray:
    """One integer code per distinct value across ``left`` then ``right`` (-1: null)."""
    if right.type != left.type:
        right = right.cast(left.type)
    return _codes(pa.chunked_array([*left.chunks, *right.chunks], left.type), null=-1)


def _codes(column: pa.ChunkedArray, null: int | None = None) -> np.ndarray:
    """Each value's code among the column's distinct values; a null's is ``null``, or one
    past the last code (then nulls group together, as the engine's GROUP BY has them)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    encoded = pc.dictionary_encode(column.combine_chunks())
    fill = len(encoded.dictionary) if null is None else null
    return np.asarray(pc.fill_null(encoded.indices, fill), dtype=np.int64)


def _micros(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A timestamp column's microseconds (0 for a null) and where it is valid."""
    valid = np.asarray(pc.is_valid(column), dtype=bool)
    values = pc.fill_null(column.cast(pa.int64()), 0)
    return np.asarray(values, dtype=np.int64), valid


def _floats(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A float column's values (0 for a null) and where it is valid."""
    valid = np.asarray(pc.is_valid(column), dtype=bool)
    values = pc.fill_null(column.cast(pa.float64()), 0.0)
    return np.asarray(values, dtype=np.float64), valid
