"""Conversion attribution: click-through before view-through, windows, and the three models."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from test_correlate import CLK, IMP, at, click, imp, rows

from advertisex.kernels.attribute import attribute_conversions
from advertisex.kernels.windows import Windows

TS = pa.timestamp("us", tz="UTC")
CNV = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", TS),
        ("user_id", pa.string()),
        ("campaign_id", pa.string()),
        ("ad_creative_id", pa.string()),
        ("conversion_type", pa.string()),
        ("conversion_value", pa.float64()),
        ("currency", pa.string()),
        ("click_ref", pa.string()),
    ]
)
W = Windows.from_seconds(click_through=3600, view_through=600)


def conv(
    e: str, m: int, user: str = "u", campaign: str = "c", click_ref: str | None = None
) -> dict[str, Any]:
    return {
        "event_id": e,
        "event_time": at(m),
        "user_id": user,
        "campaign_id": campaign,
        "conversion_value": 10.0,
        "click_ref": click_ref,
    }


def attribute(
    imps: list[Any], clicks: list[Any], convs: list[Any], **kw: Any
) -> dict[str, dict[str, Any]]:
    out = attribute_conversions(rows(IMP, imps), rows(CLK, clicks), rows(CNV, convs), W, **kw)
    return {r["event_id"]: r for r in out.to_pylist()}


def test_a_view_through_window_of_zero_credits_the_same_instant_only() -> None:
    """A window of 0 (the settings' lower bound) divided the time buckets by zero."""
    zero = Windows.from_seconds(click_through=3600, view_through=0)
    got = {
        r["event_id"]: r["attribution"]
        for r in attribute_conversions(
            rows(IMP, [imp("i", 60)]),
            rows(CLK, []),
            rows(CNV, [conv("v", 60), conv("w", 61)]),
            zero,
        ).to_pylist()
    }
    assert got == {"v": "view", "w": "none"}


def test_last_first_and_linear_credit_over_the_clicks_in_the_window() -> None:
    clicks = [click("k0", 0), click("k1", 10), click("k2", 20), click("k3", 50)]
    got = attribute([imp("i", 49)], clicks, [conv("v", 65)])["v"]
    assert got["attribution"] == "click"
    assert [t["touch_id"] for t in got["touch_path"]] == ["k1", "k2", "k3"]  # k0 is 65 min back
    assert (got["first_touch_id"], got["last_touch_id"], got["seconds_to_convert"]) == (
        "k1",
        "k3",
        900.0,
    )
    assert [t["credit_last"] for t in got["touch_path"]] == [0.0, 0.0, 1.0]
    assert [t["credit_first"] for t in got["touch_path"]] == [1.0, 0.0, 0.0]
    assert [round(t["credit_linear"], 6) for t in got["touch_path"]] == [0.333333] * 3


def test_view_through_only_without_clicks_and_within_its_window() -> None:
    imps = [imp("i1", 0), imp("i2", 55), imp("other", 58, campaign="d")]
    got = attribute(imps, [click("k", 30, user="someone-else")], [conv("v", 60), conv("late", 80)])
    assert (got["v"]["attribution"], got["v"]["last_touch_id"], got["v"]["touches"]) == (
        "view",
        "i2",
        1,
    )
    assert (got["late"]["attribution"], got["late"]["touch_path"]) == ("none", None)


def test_clicks_of_other_campaigns_or_after_the_conversion_do_not_count() -> None:
    clicks = [click("kd", 5, campaign="d"), click("after", 61)]
    got = attribute([], clicks, [conv("v", 60)])
    assert got["v"]["attribution"] == "none"


def test_per_campaign_click_through_window() -> None:
    overrides = pa.table({"campaign_id": ["c"], "click_through_window_seconds": [86400]})
    got = attribute([], [click("k", 0)], [conv("v", 600)], campaigns=overrides)
    assert got["v"]["last_touch_id"] == "k"


def test_a_conversion_naming_its_click_goes_to_that_click_before_any_window_rule() -> None:
    clicks = [click("k-named", 10), click("k-later", 50), click("k-other-user", 5, user="w")]
    got = attribute([imp("i", 55)], clicks, [conv("v", 60, click_ref="k-named")])["v"]
    # The window rule would give the last click (k-later) the credit; the id decides.
    assert (got["attribution"], got["touches"], got["last_touch_id"]) == ("click_id", 1, "k-named")
    assert got["touch_path"][0]["credit_last"] == got["touch_path"][0]["credit_first"] == 1.0


def test_a_named_click_the_user_lacks_or_outside_the_window_falls_back_to_the_windows() -> None:
    clicks = [click("k-old", 0), click("k-w", 30, user="w"), click("k", 40)]
    convs = [
        conv("too-old", 70, click_ref="k-old"),  # 70 min after k-old: past the 60 min window
        conv("not-theirs", 45, click_ref="k-w"),  # another user's click
        conv("unknown", 50, click_ref="no-such-click"),
        conv("before", 35, click_ref="k"),  # the named click came after the conversion
    ]
    got = attribute([], clicks, convs)
    assert {e: (r["attribution"], r["last_touch_id"]) for e, r in got.items()} == {
        "too-old": ("click", "k"),
        "not-theirs": ("click", "k"),
        "unknown": ("click", "k"),
        "before": ("click", "k-old"),
    }


def test_conversions_without_a_click_ref_column_are_attributed_as_before() -> None:
    table = rows(CNV, [conv("v", 20)]).drop_columns(["click_ref"])
    out = attribute_conversions(rows(IMP, []), rows(CLK, [click("k", 10)]), table, W)
    assert out.to_pylist()[0]["attribution"] == "click"
