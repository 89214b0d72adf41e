"""Click → impression and bid → impression matching, checked against plain nested loops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.kernels.correlate import match_bids, match_clicks
from advertisex.kernels.windows import Windows

T0 = datetime(2026, 11, 20, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
IMP = pa.schema(
    [
        ("impression_id", pa.string()),
        ("event_time", TS),
        ("user_id", pa.string()),
        ("campaign_id", pa.string()),
        ("ad_creative_id", pa.string()),
        ("country", pa.string()),
        ("device_type", pa.string()),
        ("website", pa.string()),
        ("cost", pa.float64()),
        ("auction_id", pa.string()),
    ]
)
CLK = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", TS),
        ("user_id", pa.string()),
        ("campaign_id", pa.string()),
        ("ad_creative_id", pa.string()),
        ("impression_id", pa.string()),
    ]
)
W = Windows.from_seconds(click=1800, impression_id=7200)


def rows(schema: pa.Schema, items: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in items], schema)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def imp(
    i: str, m: int, user: str = "u", campaign: str = "c", creative: str = "a", **kw: Any
) -> dict[str, Any]:
    return {
        "impression_id": i,
        "event_time": at(m),
        "user_id": user,
        "campaign_id": campaign,
        "ad_creative_id": creative,
        **kw,
    }


def click(e: str, m: int, user: str = "u", campaign: str = "c", **kw: Any) -> dict[str, Any]:
    return {"event_id": e, "event_time": at(m), "user_id": user, "campaign_id": campaign, **kw}


def matches(
    imps: list[dict[str, Any]], clicks: list[dict[str, Any]], **kw: Any
) -> dict[str, tuple[str, str | None]]:
    out = match_clicks(rows(IMP, imps), rows(CLK, clicks), kw.pop("windows", W), **kw)
    return {r["event_id"]: (r["match"], r["impression_id"]) for r in out.to_pylist()}


def test_exact_id_wins_over_a_later_impression() -> None:
    got = matches([imp("i1", 0), imp("i2", 5)], [click("k", 10, impression_id="i1")])
    assert got == {"k": ("exact", "i1")}


def test_missing_or_foreign_id_falls_back_to_the_window() -> None:
    imps = [imp("i1", 0), imp("i9", 1, user="other")]
    got = matches(
        imps, [click("k1", 10, impression_id="nope"), click("k2", 10, impression_id="i9")]
    )
    assert got == {"k1": ("window", "i1"), "k2": ("window", "i1")}


def test_window_edges_are_inclusive_and_look_backwards_only() -> None:
    imps = [imp("early", 0), imp("later", 31)]
    got = matches(imps, [click("edge", 30), click("before", 29), click("after", 62)])
    assert got == {
        "edge": ("window", "early"),
        "before": ("window", "early"),
        "after": ("orphan", None),
    }


def test_a_window_of_zero_matches_the_same_instant_only() -> None:
    """0 is a window the settings allow: the time buckets, one window wide, were divided by
    it (the engine's division by zero, a bug report from every marts update)."""
    zero = Windows.from_seconds(click=0, impression_id=7200)
    got = matches([imp("i1", 10), imp("i0", 9)], [click("k", 10), click("j", 11)], windows=zero)
    assert got == {"k": ("window", "i1"), "j": ("orphan", None)}


def test_named_creative_restricts_the_window_match() -> None:
    imps = [imp("ia", 0, creative="a"), imp("ib", 5, creative="b")]
    got = matches(imps, [click("k1", 10, ad_creative_id="a"), click("k2", 10)])
    assert got == {"k1": ("window", "ia"), "k2": ("window", "ib")}


def test_ties_in_time_go_to_the_greatest_id() -> None:
    got = matches([imp("i1", 0), imp("i3", 0), imp("i2", 0)], [click("k", 1)])
    assert got == {"k": ("window", "i3")}


def test_per_campaign_window_override() -> None:
    overrides = pa.table({"campaign_id": ["long"], "click_window_seconds": [7200]})
    imps = [imp("i1", 0, campaign="long"), imp("i2", 0)]
    got = matches(imps, [click("k1", 100, campaign="long"), click("k2", 100)], campaigns=overrides)
    assert got == {"k1": ("window", "i1"), "k2": ("orphan", None)}


def test_orphan_keeps_its_own_creative_and_the_match_brings_dimensions() -> None:
    imps = [imp("i1", 0, country="DE", device_type="tv")]
    out = match_clicks(
        rows(IMP, imps), rows(CLK, [click("k", 2), click("o", 2, user="x", ad_creative_id="z")]), W
    )
    by_id = {r["event_id"]: r for r in out.to_pylist()}
    assert (by_id["k"]["country"], by_id["k"]["device_type"], by_id["k"]["seconds_to_click"]) == (
        "DE",
        "tv",
        120.0,
    )
    assert (by_id["o"]["ad_creative_id"], by_id["o"]["country"]) == ("z", None)


def brute_force(
    imps: list[dict[str, Any]], clicks: list[dict[str, Any]]
) -> dict[str, tuple[str, str | None]]:
    """The rules, written as plainly as possible: loop over every impression for every click."""
    window, horizon = timedelta(seconds=1800), timedelta(seconds=7200)
    result = {}
    for c in clicks:
        found = None
        if c.get("impression_id"):
            for i in imps:
                if (
                    i["impression_id"] == c["impression_id"]
                    and i["user_id"] == c["user_id"]
                    and c["event_time"] - horizon <= i["event_time"] <= c["event_time"]
                ):
                    found = i
        if found is not None:
            result[c["event_id"]] = ("exact", found["impression_id"])
            continue
        for i in imps:
            if i["user_id"] != c["user_id"] or i["campaign_id"] != c["campaign_id"]:
                continue
            if c.get("ad_creative_id") is not None and i["ad_creative_id"] != c["ad_creative_id"]:
                continue
            if not c["event_time"] - window <= i["event_time"] <= c["event_time"]:
                continue
            if found is None or (i["event_time"], i["impression_id"]) > (
                found["event_time"],
                found["impression_id"],
            ):
                found = i
        result[c["event_id"]] = ("window", found["impression_id"]) if found else ("orphan", None)
    return result


@st.composite
def scenes(draw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    minute = st.integers(0, 240)
    imps = [
        imp(
            f"i{k}",
            draw(minute),
            user=draw(st.sampled_from("uv")),
            campaign=draw(st.sampled_from("cd")),
            creative=draw(st.sampled_from("ab")),
        )
        for k in range(draw(st.integers(0, 30)))
    ]
    ids = st.sampled_from([i["impression_id"] for i in imps] + ["gone"])
    clicks = [
        click(
            f"k{k}",
            draw(minute),
            user=draw(st.sampled_from("uv")),
            campaign=draw(st.sampled_from("cd")),
            ad_creative_id=draw(st.none() | st.sampled_from("ab")),
            impression_id=draw(st.none() | ids),
        )
        for k in range(draw(st.integers(0, 20)))
    ]
    return imps, clicks


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(scenes())
def test_fast_path_agrees_with_nested_loops_on_every_click(scene: Any) -> None:
    imps, clicks = scene
    assert matches(imps, clicks) == brute_force(imps, clicks)


BID = pa.schema(
    [
        ("auction_id", pa.string()),
        ("exchange", pa.string()),
        ("event_time", TS),
        ("campaign_id", pa.string()),
        ("ad_creative_id", pa.string()),
        ("country", pa.string()),
        ("device_type", pa.string()),
        ("floor_price", pa.float64()),
        ("bid_price", pa.float64()),
    ]
)


def test_bids_win_on_auction_id_within_the_auction_window() -> None:
    bids = rows(
        BID,
        [
            {"auction_id": "a1", "event_time": at(0), "bid_price": 3.0, "floor_price": 1.0},
            {"auction_id": "a2", "event_time": at(0), "bid_price": 2.0},
            {"auction_id": "a3", "event_time": at(0)},
        ],
    )
    imps = rows(
        IMP,
        [
            imp("i1", 0, auction_id="a1", cost=0.0021),
            imp("i0", 1, auction_id="a1", cost=0.005),
            imp("i2", 120, auction_id="a2", cost=0.001),
        ],
    )
    out = {r["auction_id"]: r for r in match_bids(bids, imps, Windows()).to_pylist()}
    assert (out["a1"]["won"], out["a1"]["impression_id"]) == (True, "i1")
    assert abs(out["a1"]["clearing_cpm"] - 2.1) < 1e-9
    assert (out["a2"]["won"], out["a3"]["won"]) == (False, False)
