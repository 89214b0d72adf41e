"""Hourly rollups and reach: exact integer sums, credits that add up, sketches that merge."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_correlate import CLK, IMP, at, click, imp, rows
from test_correlate_attribution import CNV, conv

from advertisex.kernels import sketch
from advertisex.kernels.attribute import attribute_conversions
from advertisex.kernels.correlate import match_bids, match_clicks
from advertisex.kernels.rollup import (
    auction_measures,
    bid_measures,
    campaign_daily,
    campaign_hourly,
    key_groups,
    merge_hourly,
    named_clicks,
    shown_hourly,
)
from advertisex.kernels.windows import Windows
from advertisex.util import engine

BID = pa.schema(
    [
        ("auction_id", pa.string()),
        ("exchange", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("campaign_id", pa.string()),
        ("ad_creative_id", pa.string()),
        ("country", pa.string()),
        ("device_type", pa.string()),
        ("floor_price", pa.float64()),
        ("bid_price", pa.float64()),
    ]
)


def rollup(imps: list, clicks: list, convs: list, hours: list | None = None) -> pa.Table:
    i, k, v = rows(IMP, imps), rows(CLK, clicks), rows(CNV, convs)
    matched = match_clicks(i, k, Windows())
    attributed = attribute_conversions(i, k, v, Windows())
    bids = bid_measures(match_bids(rows(BID, []), i, Windows()))
    return campaign_hourly(i, matched, attributed, bids, None if hours is None else pa.array(hours))


def test_measures_land_in_the_hour_and_dimensions_they_belong_to() -> None:
    imps = [
        imp("i1", 0, cost=0.0015, country="US", device_type="mobile"),
        imp("i2", 70, creative="b", cost=0.002, country="DE", device_type="tv"),
    ]
    clicks = [click("k1", 75), click("k2", 76, user="x")]  # k2 is an orphan
    out = rollup(imps, clicks, [conv("v", 130)])
    by = {(r["hour"].hour, r["ad_creative_id"], r["country"]): r for r in out.to_pylist()}
    assert by[(0, "a", "US")]["impressions"] == 1 and by[(0, "a", "US")]["spend_micros"] == 1500
    assert by[(1, "b", "DE")]["clicks"] == 1 and by[(1, "b", "DE")]["conv_last"] == 1_000_000
    assert by[(1, None, None)]["orphan_clicks"] == 1
    assert by[(2, None, None)]["conversions"] == 1
    assert by[(2, None, None)]["conversion_value_micros"] == 10_000_000


def test_linear_credit_of_one_conversion_adds_up_to_exactly_one() -> None:
    clicks = [click(f"k{n}", n) for n in range(7)]
    out = rollup([], clicks, [conv("v", 30)])
    assert sum(out.column("conv_linear").to_pylist()) == 1_000_000
    assert sum(out.column("value_linear").to_pylist()) == 10_000_000


def test_hours_argument_restricts_the_output_to_those_hours() -> None:
    imps = [imp("i1", 0), imp("i2", 70), imp("i3", 130)]
    hour = datetime(2026, 11, 20, 1, tzinfo=UTC)
    out = rollup(imps, [], [], hours=[hour])
    assert out.column("hour").to_pylist() == [hour]


def test_daily_reach_is_the_union_of_hourly_users_not_their_sum() -> None:
    imps = [imp(f"i{n}", 40 * n, user=f"u{n % 3}") for n in range(12)]  # 3 users over 8 hours
    hourly = rollup(imps, [], [])
    daily = campaign_daily(hourly)
    assert sum(hourly.column("unique_users").to_pylist()) > 3
    assert daily.column("unique_users").to_pylist() == [3]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3000), max_size=300), min_size=1, max_size=6))
def test_sketch_merge_is_exact_below_the_limit_and_order_free(groups: list[list[int]]) -> None:
    lists = pa.array(
        [sorted({sketch.hash_user(f"u{n}") for n in g}) for g in groups], pa.list_(pa.uint64())
    )
    parts = sketch.from_lists(lists)
    # Lists as they come (any order, repeats) give the same sketches as sorted ones.
    unsorted = pa.array(
        [[sketch.hash_user(f"u{n}") for n in g] for g in groups], pa.list_(pa.uint64())
    )
    assert sketch.from_lists(unsorted).to_pylist() == parts.to_pylist()
    everyone = {n for g in groups for n in g}
    merged = sketch.union(parts)
    reordered = sketch.union(parts.take(pa.array(list(range(len(groups)))[::-1])))
    assert merged == reordered
    (count,) = sketch.estimate(pa.array([merged], pa.large_binary()))
    if len(everyone) <= sketch.EXACT_LIMIT:
        assert count == len(everyone)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2**64 - 1)), max_size=60),
    st.booleans(),
    st.sampled_from([1, 4096]),
)
def test_pairs_are_ordered_as_lexsort_orders_them(
    pairs: list[tuple[int, int]], grouped: bool, alone: int
) -> None:
    # Groups in order (a day's hours) take the per-group sort, others (and many groups:
    # ``alone`` = 1) lexsort; either way the pairs come out as lexsort orders them.
    if grouped:
        pairs = sorted(pairs, key=lambda pair: pair[0])
    groups = np.array([g for g, _ in pairs], dtype=np.int64)
    values = np.array([v for _, v in pairs], dtype=np.uint64)
    expected = np.lexsort((values, groups))
    kept = sketch._GROUPS_SORTED_ALONE
    sketch._GROUPS_SORTED_ALONE = alone
    try:
        ordered_groups, ordered_values = sketch._ordered(groups, values)
    finally:
        sketch._GROUPS_SORTED_ALONE = kept
    assert ordered_groups.tolist() == groups[expected].tolist()
    assert ordered_values.tolist() == values[expected].tolist()
    assert values.tolist() == [v for _, v in pairs]  # the caller's values are left as they were


def test_large_sets_switch_to_hyperloglog_within_two_percent() -> None:
    rng = np.random.default_rng(3)
    hashes = np.unique(rng.integers(0, 2**64, 50_000, dtype=np.uint64))
    halves = pa.array([hashes[::2], hashes[1::2]], pa.list_(pa.uint64()))
    parts = sketch.from_lists(halves)
    assert all(len(p.as_py()) == 8 + sketch.M for p in parts)  # header + registers
    (count,) = sketch.estimate(pa.array([sketch.union(parts)], pa.large_binary()))
    assert abs(count - len(hashes)) / len(hashes) < 0.02


def test_duckdb_and_python_hash_users_alike() -> None:
    from advertisex.util import engine

    got = engine.run("SELECT " + sketch.HASH_SQL.format(column="'u-0000042'") + " AS h")
    assert got.column("h").to_pylist() == [sketch.hash_user("u-0000042")]


def test_days_split_at_utc_midnight() -> None:
    late, early = imp("late", 23 * 60 + 59), imp("early", 24 * 60 + 1, user="v")
    daily = campaign_daily(rollup([late, early], [], []))
    assert [(d["day"].day, d["unique_users"]) for d in daily.to_pylist()] == [(20, 1), (21, 1)]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 600), st.integers(0, 9), st.sampled_from(["a", "b"])),
        max_size=60,
    ),
    st.integers(0, 60),
)
@pytest.mark.slow
def test_rows_of_parts_merge_into_the_rows_of_the_whole(
    shown: list[tuple[int, int, str]], cut: int
) -> None:
    """Impressions counted a part at a time and the responses once, merged; bid measures of
    two halves of the bids summed by the rollup: the rows (and sketches) of the whole."""
    imps = [
        imp(f"i{n}", m, user=f"u{u}", creative=c, country="US", auction_id=f"a{n}", cost=0.001)
        for n, (m, u, c) in enumerate(shown)
    ]
    i = rows(IMP, imps)
    k = rows(CLK, [click(f"k{n}", m + 1, user=f"u{u}") for n, (m, u, _) in enumerate(shown[:9])])
    v = rows(CNV, [conv(f"v{n}", m + 30, user=f"u{u}") for n, (m, u, _) in enumerate(shown[:4])])
    matched, attributed = match_clicks(i, k, Windows()), attribute_conversions(i, k, v, Windows())
    bid_rows = [
        {"auction_id": f"a{n}", "exchange": "x", "event_time": r["event_time"], "campaign_id": "c"}
        | {"bid_price": 0.5 + n % 3, "floor_price": 0.1}
        for n, r in enumerate(imps)
    ]
    b = rows(BID, bid_rows)
    whole = campaign_hourly(i, matched, attributed, bid_measures(match_bids(b, i, Windows())))
    halves = pa.concat_tables(
        [
            bid_measures(match_bids(b.slice(0, cut), i, Windows())),
            bid_measures(match_bids(b.slice(cut), i, Windows())),
        ]
    )
    none = i.slice(0, 0)
    parts = [
        campaign_hourly(p, matched.slice(0, 0), attributed.slice(0, 0), halves.slice(0, 0))
        for p in (i.slice(0, cut), i.slice(cut))
    ]
    parts.append(campaign_hourly(none, matched, attributed, halves, touch_impressions=i))
    assert merge_hourly(parts).equals(whole)
    # Counted apart and handed over: the rows of the whole, without a merge.
    apart = campaign_hourly(
        none, matched, attributed, halves, touch_impressions=i, shown=shown_hourly(i)
    )
    assert apart.equals(whole)


def test_impressions_counted_apart_give_the_rows_of_the_whole() -> None:
    """``shown_hourly`` of the impressions (counted before any click, conversion or bid is
    matched) handed to the rollup as ``shown``: its rows are those of the rollup counting
    them itself — impressions, spend and the users' sketches from ``shown``, the rest from
    the responses, the view touches found among the touch impressions."""
    i = rows(
        IMP,
        [
            imp("i1", 0, user="u1", country="FR", cost=0.002),
            imp("i2", 1, user="u2", cost=0.004),
            imp("i3", 70, user="u1", creative="cr-b"),
        ],
    )
    k = rows(CLK, [click("k1", 5, user="u1")])
    v = rows(CNV, [conv("v1", 30, user="u1"), conv("v2", 90, user="u2")])
    matched, attributed = match_clicks(i, k, Windows()), attribute_conversions(i, k, v, Windows())
    bids = bid_measures(match_bids(rows(BID, []), i, Windows()))
    whole = campaign_hourly(i, matched, attributed, bids)
    shown = shown_hourly(i)
    assert sorted(shown.column("impressions").to_pylist()) == [1, 1, 1]
    apart = campaign_hourly(
        i.slice(0, 0), matched, attributed, bids, touch_impressions=i, shown=shown
    )
    assert apart.equals(whole)
    assert sum(apart.column("impressions").to_pylist()) == 3


def test_parts_by_campaign_credit_a_click_of_another_campaign_its_conversion_named() -> None:
    """Split by campaign, as Spark splits the rollup: a conversion of campaign d whose
    postback named click k1 of campaign c (and one of c naming k2, also c's) is credited
    on k1's creative and country only when d's part is given k1 (``named_clicks``)."""
    i = rows(IMP, [imp("i1", 0, country="FR", creative="cr-c"), imp("i2", 1, campaign="d")])
    k = rows(CLK, [click("k1", 5, impression_id="i1"), click("k2", 6, impression_id="i1")])
    v = rows(CNV, [conv("v1", 30, campaign="d", click_ref="k1"), conv("v2", 31, click_ref="k2")])
    matched, attributed = match_clicks(i, k, Windows()), attribute_conversions(i, k, v, Windows())
    assert attributed.column("attribution").to_pylist() == ["click_id", "click_id"]
    bids = bid_measures(match_bids(rows(BID, []), i, Windows()))
    whole = campaign_hourly(i, matched, attributed, bids)
    named = named_clicks(matched, attributed)
    assert named.select(["event_id", "campaign_id"]).to_pylist() == [
        {"event_id": "k1", "campaign_id": "d"}  # under the conversion's campaign, k2 not
    ]

    def part(campaign: str, given: pa.Table | None) -> pa.Table:
        def mine(t: pa.Table) -> pa.Table:
            return t.filter(pc.equal(t.column("campaign_id"), campaign))

        touch = None if given is None else pa.concat_tables([mine(matched), mine(given)])
        return campaign_hourly(mine(i), mine(matched), mine(attributed), bids, touch_clicks=touch)

    split = pa.concat_tables([part("c", named), part("d", named)]).sort_by(
        [("campaign_id", "ascending"), ("hour", "ascending")]
    )
    assert split.equals(whole)
    credited = part("d", None).filter(pc.greater(part("d", None).column("conv_last"), 0))
    assert credited.column("ad_creative_id").to_pylist() == [None]  # without it: nothing named


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 8), st.integers(0, 90), st.booleans()), max_size=30),
    st.lists(
        st.tuples(
            st.integers(0, 9),
            st.sampled_from(["x", "y", None]),
            st.integers(0, 90),
            st.one_of(st.none(), st.floats(0.01, 9.0)),
        ),
        max_size=40,
    ),
)
def test_auction_measures_are_the_bid_measures_of_the_matched_bids(
    shown: list[tuple[int, int, bool]], asked: list[tuple[int, str | None, int, float | None]]
) -> None:
    """One query from bids and impressions to the measures: the rows of summing
    match_bids' rows — replayed renders (several impressions of one auction), exchanges
    missing, bids with no price, impressions outside the auction window or without an
    auction id (the measures took only those with one)."""
    imps = rows(
        IMP,
        [
            imp(f"i{n}", m, country="US", auction_id=f"a{a}" if has else None, cost=0.001 * a)
            for n, (a, m, has) in enumerate(shown)
        ],
    )
    bids = rows(
        BID,
        [
            {"auction_id": f"a{a}", "exchange": x, "event_time": at(m), "campaign_id": "c"}
            | {"country": "US", "bid_price": price, "floor_price": 0.1}
            for a, x, m, price in asked
        ],
    )
    with_auction = imps.filter(pc.is_valid(imps.column("auction_id")))
    want = bid_measures(match_bids(bids, with_auction, Windows()))
    assert auction_measures(bids, imps, Windows()).equals(want)


_KEY_VALUES = st.one_of(st.none(), st.sampled_from(["", "a", "b", "B", "é", "a\x00", "zz"]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(_KEY_VALUES, st.one_of(st.none(), st.integers(-3, 3)), _KEY_VALUES),
        max_size=40,
    ),
    st.booleans(),
)
def test_key_groups_are_the_engines_groups_in_its_order(
    keys: list[tuple[str | None, int | None, str | None]], wide: bool
) -> None:
    """The rows ordered as the engine's ``ORDER BY … NULLS LAST`` orders them (ties in row
    order), and a group for each distinct key the engine's GROUP BY finds (a null its own
    value) — keys combined into one integer, or (``wide``: too many distinct values for
    one) sorted one by one."""
    table = pa.table(
        {
            "s": pa.array([k[0] for k in keys], pa.string()),
            "t": pa.array(
                [
                    None if k[1] is None else datetime(2026, 11, 20, 10 + k[1], tzinfo=UTC)
                    for k in keys
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "u": pa.array([k[2] for k in keys], pa.string()),
        }
    )
    names = ["s", "t", "u"]
    if wide:  # 2^40 distinct values in two columns: their ranks no longer fit one integer
        spread = pa.array(range(len(keys)), pa.int64())
        table = table.append_column("w1", pc.multiply(spread, 1 << 40))
        table = table.append_column("w2", pc.multiply(spread, -(1 << 40)))
        names = ["s", "w1", "t", "w2", "u"]
    order, starts = key_groups(table, names)
    by = ", ".join(f"{n} NULLS LAST" for n in names)
    expected = engine.run(
        f"SELECT row FROM (SELECT *, row_number() OVER () - 1 AS row FROM keyed) ORDER BY {by}, row",
        keyed=table,
    )
    assert order.tolist() == expected.column("row").to_pylist()
    groups = engine.run(f"SELECT count(*) AS n FROM keyed GROUP BY {', '.join(names)}", keyed=table)
    assert len(starts) == groups.num_rows
    ordered = table.take(pa.array(order)).to_pylist()
    assert all(ordered[a] != ordered[a - 1] for a in starts[1:])
    bounds = [*starts.tolist(), len(order)]
    assert all(
        ordered[r] == ordered[lo] for lo, hi in itertools.pairwise(bounds) for r in range(lo, hi)
    )


def test_rollup_sums_are_exact_past_the_floating_point_and_refused_past_64_bits() -> None:
    """Spend summed per key as integers, exactly, also where the hour's values together
    pass what a double holds exactly; a key whose sum passes 64 bits is an error, as the
    engine's sum was (never a wrapped-around figure)."""
    big = 2**62 + 1
    shown = pa.table(
        {
            "campaign_id": ["c", "c", "d", "d"],
            "ad_creative_id": ["k", "k", "k", "k"],
            "hour": pa.array([datetime(2026, 11, 20, 10, tzinfo=UTC)] * 4),
            "country": ["US"] * 4,
            "device_type": ["mobile"] * 4,
            "impressions": [1, 1, 1, 1],
            "spend_micros": [big, 1, big, -big],
            "users": pa.array([None] * 4, pa.large_binary()),
        }
    )
    empty = rows(IMP, [])
    none = match_clicks(empty, rows(CLK, []), Windows())
    attributed = attribute_conversions(empty, rows(CLK, []), rows(CNV, []), Windows())
    bids = bid_measures(match_bids(rows(BID, []), empty, Windows()))
    hourly = campaign_hourly(empty, none, attributed, bids, shown=shown)
    assert hourly.column("spend_micros").to_pylist() == [big + 1, 0]
    assert hourly.column("impressions").to_pylist() == [2, 2]
    over = shown.set_column(6, "spend_micros", pa.array([big, big, big, 0], pa.int64()))
    with pytest.raises(OverflowError):
        campaign_hourly(empty, none, attributed, bids, shown=over)
