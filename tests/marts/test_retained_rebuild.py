"""A rebuild after curated retention keeps the marts' rows the curated tables can no longer answer."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from mart_events import T0, minutes, table

from advertisex.kernels.windows import Windows
from advertisex.marts import maintain
from advertisex.marts.store import MemoryCurated, MemoryMarts
from advertisex.model.marts import SLICE_COLUMN

WINDOWS = Windows.from_seconds(
    click=30 * 60, impression_id=2 * 3600, click_through=86400, view_through=6 * 3600, auction=600
)
RULES = maintain.MatchingRules(
    WINDOWS, pa.table({"campaign_id": ["c1"], "click_window_seconds": [2 * 3600]})
)
# Other rules (c1's click window back to the default): what an upgrade's rebuild applies.
CHANGED = maintain.MatchingRules(WINDOWS)
CURATED = ("curated.impressions", "curated.clicks", "curated.conversions", "curated.bid_requests")
DAYS = 6
CUT = T0.date() + timedelta(days=2)  # retention keeps this day on
# The curated tables are whole from CUT; the widest window (click-through, a day) on.
SINCE = datetime.combine(CUT + timedelta(days=1), datetime.min.time(), UTC)


def _events(seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """Six days of impressions (some won at auction), clicks after some of them, and
    conversions after some clicks or views, for three users and two campaigns."""
    rng = random.Random(seed)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in CURATED}
    for k in range(DAYS * 24 * 2):
        at = 30 * k + rng.randrange(30)
        user, campaign = rng.choice(["u0", "u1", "u2"]), rng.choice(["c0", "c1"])
        auction = f"auc-{k}" if rng.random() < 0.5 else None
        rows["curated.impressions"].append(
            {"impression_id": f"imp-{k}", "event_time": minutes(at), "user_id": user,
             "campaign_id": campaign, "ad_creative_id": "a", "country": "US",
             "device_type": "mobile", "cost": 0.002, "auction_id": auction}
        )  # fmt: skip
        if auction:
            rows["curated.bid_requests"].append(
                {"auction_id": auction, "exchange": "x", "event_time": minutes(at - 1),
                 "user_id": user, "campaign_id": campaign, "ad_creative_id": "a",
                 "bid_price": 0.5, "floor_price": 0.1}
            )  # fmt: skip
        if rng.random() < 0.3:
            click = at + rng.choice([5, 40, 90])
            rows["curated.clicks"].append(
                {"event_id": f"clk-{k}", "event_time": minutes(click), "user_id": user,
                 "campaign_id": campaign}
            )  # fmt: skip
        if rng.random() < 0.2:
            rows["curated.conversions"].append(
                {"event_id": f"cnv-{k}", "event_time": minutes(at + rng.choice([60, 300, 1300])),
                 "user_id": user, "campaign_id": campaign, "conversion_value": 3.0}
            )  # fmt: skip
    return rows


def _curated(
    events: dict[str, list[dict[str, Any]]], kept_from: date | None = None
) -> MemoryCurated:
    """The curated tables of ``events``; with ``kept_from``, as retention left them."""
    curated = MemoryCurated()
    if kept_from is not None:
        events = {
            name: [row for row in rows if row["event_time"].date() >= kept_from]
            for name, rows in events.items()
        }
        curated.retention = dict.fromkeys(CURATED, kept_from)
    curated.append({name: table(name, rows) for name, rows in events.items()})
    return curated


def _split(marts: MemoryMarts, name: str) -> tuple[list[str], list[str]]:
    """A mart's rows (canonical) before :data:`SINCE` and from it on."""
    column = SLICE_COLUMN[name]
    bound: Any = SINCE.date() if column == "day" else SINCE
    rows = marts.tables[name].to_pylist()
    return (
        sorted(repr(r) for r in rows if r[column] < bound),
        sorted(repr(r) for r in rows if r[column] >= bound),
    )


@pytest.mark.parametrize("bucket_rows", [None, 7], ids=["whole", "a-bucket-at-a-time"])
@pytest.mark.parametrize("rules", [RULES, CHANGED], ids=["same-rules", "changed-rules"])
def test_a_rebuild_after_retention_keeps_the_older_marts_and_recomputes_the_rest(
    rules: maintain.MatchingRules, bucket_rows: int | None
) -> None:
    """Retention kept the curated tables from CUT, the marts longer: a rebuild (here also
    one after the rules changed) keeps every mart row before CUT + the widest window as it
    was, and recomputes the rows from then on as a rebuild over all the data would (the
    kernels' steps whole, or on buckets of a few rows)."""
    from advertisex.marts.local import LocalKernels

    events = _events()
    marts = MemoryMarts()
    maintain.rebuild(_curated(events), marts, RULES)
    before = {name: _split(marts, name) for name in maintain.MART_TABLES}

    retained = _curated(events, kept_from=CUT)
    kernels = None if bucket_rows is None else LocalKernels(retained, bucket_rows)
    report = maintain.rebuild(retained, marts, rules, kernels)

    everything = MemoryMarts()
    maintain.rebuild(_curated(events), everything, rules)
    for name in maintain.MART_TABLES:
        old, new = _split(marts, name)
        assert old == before[name][0], name  # kept as they were
        assert old, name  # … and there were some
        assert new == _split(everything, name)[1], name  # recomputed as from all the data
    assert report.recomputed_from == SINCE.date()
    assert report.kept_note is not None and SINCE.date().isoformat() in report.kept_note


def test_an_attribution_near_the_cutoff_keeps_the_touch_retention_took() -> None:
    """A conversion within the click-through window of a click on a day retention took is
    not recomputed (it would lose its click): the rebuild starts a widest window after
    the cutoff."""
    cutoff = datetime.combine(CUT, datetime.min.time(), UTC)
    events: dict[str, list[dict[str, Any]]] = {name: [] for name in CURATED}
    events["curated.impressions"] = [
        {"impression_id": f"imp-{k}", "event_time": cutoff + timedelta(hours=h), "user_id": "u0",
         "campaign_id": "c0", "ad_creative_id": "a"}
        for k, h in enumerate((-30, 30))
    ]  # fmt: skip
    events["curated.clicks"] = [
        {"event_id": "clk-0", "event_time": cutoff - timedelta(hours=2), "user_id": "u0",
         "campaign_id": "c0"}
    ]  # fmt: skip
    events["curated.conversions"] = [
        {"event_id": "cnv-0", "event_time": cutoff + timedelta(hours=10), "user_id": "u0",
         "campaign_id": "c0"}
    ]  # fmt: skip
    marts = MemoryMarts()
    maintain.rebuild(_curated(events), marts, RULES)
    kept = marts.tables["marts.attributed_conversions"].to_pylist()
    assert [r["attribution"] for r in kept] == ["click"]

    retained = _curated(events, kept_from=CUT)
    alone = MemoryMarts()
    maintain.rebuild(retained, alone, RULES)  # from what retention left, the click is gone
    assert [r["attribution"] for r in alone.tables["marts.attributed_conversions"].to_pylist()] == [
        "none"
    ]
    report = maintain.rebuild(retained, marts, RULES)
    assert marts.tables["marts.attributed_conversions"].to_pylist() == kept
    assert report.recomputed_from == SINCE.date()


def test_a_rebuild_over_curated_tables_that_hold_everything_recomputes_everything() -> None:
    """No retention ran, or the marts were kept no longer than the curated tables: the
    rebuild recomputes every row, as it always did."""
    events = _events()
    marts = MemoryMarts()
    maintain.rebuild(_curated(events), marts, RULES)
    assert maintain.rebuild(_curated(events), marts, CHANGED).recomputed_from is None
    retained = _curated(events, kept_from=CUT)
    both = MemoryMarts()
    maintain.rebuild(retained, both, RULES)  # the marts' retention as the curated tables'
    report = maintain.rebuild(retained, both, CHANGED)
    assert report.recomputed_from is None and report.kept_note is None
    everything = MemoryMarts()
    maintain.rebuild(retained, everything, CHANGED)
    assert {n: _split(both, n) for n in maintain.MART_TABLES} == {
        n: _split(everything, n) for n in maintain.MART_TABLES
    }


def test_a_rebuild_over_curated_tables_retention_emptied_keeps_every_mart_row() -> None:
    """Retention took every curated day and its setting was removed since: the curated
    tables hold nothing and say no cutoff. A rebuild (after a rules change, say) keeps
    every mart row as it was — recomputed, they would all be gone — and says so."""
    events = _events()
    marts = MemoryMarts()
    maintain.rebuild(_curated(events), marts, RULES)
    before = {name: marts.tables[name].to_pylist() for name in maintain.MART_TABLES}
    assert all(before.values())

    report = maintain.rebuild(MemoryCurated(), marts, CHANGED)
    assert {name: marts.tables[name].to_pylist() for name in maintain.MART_TABLES} == before
    assert report.kept_everything and report.recomputed_from is None
    assert report.kept_note is not None and "kept as they were" in report.kept_note
    assert marts.state() == maintain._state(MemoryCurated().positions(), CHANGED)


def test_a_first_build_looks_at_no_curated_table_for_its_first_day() -> None:
    """Whether retention took curated days only matters to marts that hold rows: a first
    build does not ask the curated tables (over Iceberg, a read of every manifest)."""

    class Unasked(MemoryCurated):
        def first_day(self, table: str) -> date | None:
            raise AssertionError(f"a first build asked for {table}'s first day")

    events = _events()
    curated = Unasked()
    curated.append({name: table(name, rows) for name, rows in events.items()})
    marts = MemoryMarts()
    maintain.rebuild(curated, marts, RULES)
    everything = MemoryMarts()
    maintain.rebuild(_curated(events), everything, RULES)
    assert marts.tables.keys() == everything.tables.keys()
    for name, rows in everything.tables.items():
        assert marts.tables[name].equals(rows)
