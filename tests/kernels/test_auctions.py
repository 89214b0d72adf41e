"""The auctions' NumPy match and sums against the engine's query they replace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_correlate import IMP
from test_rollup import BID

from advertisex.kernels import auctions
from advertisex.kernels.correlate import MATCH_BIDS_SQL
from advertisex.kernels.rollup import _BID_SQL, BID_MEASURES, _ordered, auction_measures
from advertisex.kernels.windows import Windows
from advertisex.util import engine

T0 = datetime(2026, 11, 20, tzinfo=UTC)
WINDOW_US = 600_000_000  # ten minutes


def engines(bids: pa.Table, impressions: pa.Table, auction_us: int = WINDOW_US) -> pa.Table:
    """The query ``rollup.auction_measures`` ran before the NumPy kernel."""
    query = f"WITH matched AS ({MATCH_BIDS_SQL}) {_BID_SQL.format(source='matched')}"
    rows = engine.run(query, {"auction_us": auction_us}, bids=bids, impressions=impressions)
    return _ordered(rows).cast(BID_MEASURES)


def numpy(bids: pa.Table, impressions: pa.Table, auction_us: int = WINDOW_US) -> pa.Table:
    rows = auctions.measures(bids, impressions, auction_us)
    assert rows is not None
    return rows.cast(BID_MEASURES)


def _at(seconds: int | None) -> datetime | None:
    return None if seconds is None else T0 + timedelta(seconds=seconds)


# Few values each, so that ties are common: equal times, repeated impression ids with
# other costs, duplicate bids of one (auction, exchange), prices on half micro-units.
_AUCTION = st.one_of(st.none(), st.sampled_from(["a1", "a2", "a3", "a10"]))
_BID_TIME = st.sampled_from([0, 1, 300, 599, 600, 601, 1200, 5000])  # a bid's is never null
_TIME = st.one_of(st.none(), _BID_TIME)
_PRICE = st.one_of(
    st.none(),
    st.sampled_from([0.0, 0.0000005, 0.0000015, 0.0000025, -0.0000005, 1.2345675, 0.1, 7.0]),
    st.floats(0, 50, allow_nan=False),
)
_KEY = st.sampled_from([None, "", "c", "d", "é"])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(_AUCTION, _TIME, st.sampled_from(["i1", "i2", "i10", None]), _PRICE),
        max_size=25,
    ),
    st.lists(
        st.tuples(
            _AUCTION,
            st.sampled_from(["x", "y", None]),
            _BID_TIME,
            st.tuples(_KEY, _KEY, _KEY, _KEY),
            _PRICE,
            _PRICE,
        ),
        max_size=30,
    ),
)
def test_the_numpy_match_gives_the_engines_rows(
    shown: list[tuple[str | None, int | None, str | None, float | None]],
    asked: list[tuple[str | None, str | None, int, tuple, float | None, float | None]],
) -> None:
    """Every tie rule of the query: the earliest impression of an auction in the window of
    any bid of its (auction, exchange), then the least id, then the least cost (nulls
    last); a missing exchange its own pair; bids without an auction id, impressions
    without a time, never won; prices rounded half away from zero; sums of no price null."""
    imps = pa.Table.from_pylist(
        [
            {"impression_id": i, "event_time": _at(t), "auction_id": a, "cost": c}
            for a, t, i, c in shown
        ],
        IMP,
    )
    bids = pa.Table.from_pylist(
        [
            {"auction_id": a, "exchange": x, "event_time": _at(t), "campaign_id": keys[0]}
            | {"ad_creative_id": keys[1], "country": keys[2], "device_type": keys[3]}
            | {"bid_price": bid, "floor_price": floor}
            for a, x, t, keys, bid, floor in asked
        ],
        BID,
    )
    assert numpy(bids, imps).equals(engines(bids, imps))


def test_the_earliest_then_least_id_then_least_cost_wins() -> None:
    imps = pa.Table.from_pylist(
        [
            {"impression_id": "i2", "event_time": _at(5), "auction_id": "a", "cost": 0.001},
            {"impression_id": "i10", "event_time": _at(5), "auction_id": "a", "cost": 0.003},
            {"impression_id": "i10", "event_time": _at(5), "auction_id": "a", "cost": 0.002},
            {"impression_id": "i0", "event_time": _at(9000), "auction_id": "a", "cost": 0.5},
        ],
        IMP,
    )
    bids = pa.Table.from_pylist(
        [
            {"auction_id": "a", "exchange": "x", "event_time": _at(0), "campaign_id": "c"},
            # Its own time is past the window: won with its pair's other bid all the same.
            {"auction_id": "a", "exchange": "x", "event_time": _at(9000), "campaign_id": "d"},
        ],
        BID,
    )
    winner = auctions.winners(bids, imps, WINDOW_US).tolist()
    assert winner == [2, 2]  # i10 at 0.002: "i10" < "i2" byte by byte
    got = numpy(bids, imps)
    assert got.column("wins").to_pylist() == [1, 1]
    assert got.column("clearing_micros").to_pylist() == [2_000_000, 2_000_000]
    assert got.equals(engines(bids, imps))


@pytest.mark.parametrize(
    ("price", "seconds"), [(float("nan"), 0), (float("inf"), 0), (1e15, 0), (1.0, None)]
)
def test_what_the_sums_cannot_hold_is_left_to_the_engine(price: float, seconds: int | None) -> None:
    """A price NaN, infinite or past 64 bits in micro-units, a bid without a time (no
    hour): the engine's cast raises, and the kernel hands the query back to it (None)
    rather than answer otherwise."""
    bids = pa.Table.from_pylist(
        [{"auction_id": "a", "event_time": _at(seconds), "bid_price": price}], BID
    )
    imps = IMP.empty_table()
    assert auctions.measures(bids, imps, WINDOW_US) is None
    with pytest.raises((duckdb.ConversionException, pa.ArrowInvalid, ValueError)):
        auction_measures(bids, imps, Windows())


def test_auction_ids_sharing_a_hash_are_left_to_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two ids of one hash (every id's hash the same here): the kernel finds the texts of a
    joined bid and impression differ and leaves the auctions to the engine's query."""
    imps = pa.Table.from_pylist(
        [
            {"impression_id": "i1", "event_time": _at(0), "auction_id": "a1", "cost": 0.001},
            {"impression_id": "i2", "event_time": _at(1), "auction_id": "a2", "cost": 0.002},
        ],
        IMP,
    )
    bids = pa.Table.from_pylist(
        [{"auction_id": a, "exchange": "x", "event_time": _at(0)} for a in ("a2", "a1")], BID
    )
    assert auctions.winners(bids, imps, WINDOW_US) is not None  # apart, no doubt
    monkeypatch.setattr(
        auctions.native, "text_hashes", lambda texts: np.zeros(len(texts), dtype=np.uint64)
    )
    assert auctions.winners(bids, imps, WINDOW_US) is None
    assert auction_measures(bids, imps, Windows()).equals(engines(bids, imps))
