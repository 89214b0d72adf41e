"""Keep the marts equal to a full recompute over the curated tables, touching only what changed.

:func:`update` reads the curated rows appended since the marts' remembered positions,
asks :mod:`advertisex.marts.plan` which slices they can change, recomputes exactly
those slices with the kernels, and swaps them in — all marts and the new positions in
one atomic commit. Whatever order events arrive in and however they are cut into
batches, the result is the same as :func:`rebuild`, which recomputes everything (and
which :func:`update` falls back to on first use, after the matching rules changed, or
when curated rows were rewritten rather than appended).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels.attribute import CONVERSION_COLUMNS, attribute_conversions
from advertisex.kernels.correlate import (
    BID_COLUMNS,
    CLICK_COLUMNS,
    IMPRESSION_COLUMNS,
    match_bids,
    match_clicks,
)
from advertisex.kernels.rollup import campaign_daily, campaign_hourly, with_impression_part
from advertisex.kernels.windows import Windows, campaign_table, fingerprint, widest
from advertisex.marts import plan
from advertisex.marts.schemas import (
    ATTRIBUTED_CLICKS_TABLE as CLICKS_MART,
)
from advertisex.marts.schemas import (
    ATTRIBUTED_CONVERSIONS_TABLE as CONVERSIONS_MART,
)
from advertisex.marts.schemas import (
    CAMPAIGN_DAILY_TABLE as DAILY_MART,
)
from advertisex.marts.schemas import (
    CAMPAIGN_HOURLY_TABLE as HOURLY_MART,
)
from advertisex.marts.schemas import TS
from advertisex.marts.store import Curated, Marts, Range, Slice

IMPRESSIONS, CLICKS = "curated.impressions", "curated.clicks"
CONVERSIONS, BIDS = "curated.conversions", "curated.bid_requests"
# What the planner needs of new rows, per curated table.
NEW_COLUMNS = {
    IMPRESSIONS: ("user_id", "event_time", "auction_id"),
    CLICKS: ("user_id", "event_time"),
    CONVERSIONS: ("user_id", "event_time"),
    BIDS: ("event_time",),
}
FINGERPRINT = "fingerprint"


@dataclass(frozen=True)
class Rules:
    """The matching rules: default windows and per-campaign overrides (campaign_id + seconds)."""

    windows: Windows = field(default_factory=Windows)
    campaigns: pa.Table | None = None

    @cached_property
    def per_campaign(self) -> pa.Table:
        return campaign_table(self.campaigns)

    @cached_property
    def widest(self) -> Windows:
        return widest(self.windows, self.per_campaign)

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.windows, self.per_campaign)


@dataclass
class MartUpdate:
    """What one maintenance run did."""

    mode: str  # rebuild | incremental | unchanged
    new_rows: dict[str, int] = field(default_factory=dict)
    users: int = 0
    clicks: int = 0
    conversions: int = 0
    hours: int = 0
    days: int = 0
    seconds: float = 0.0


def update(curated: Curated, marts: Marts, rules: Rules) -> MartUpdate:
    """Fold the curated rows appended since the last run into the marts."""
    started = time.perf_counter()
    state = marts.state()
    positions = curated.positions()
    if state.get(FINGERPRINT) != rules.fingerprint:
        return rebuild(curated, marts, rules)
    new: dict[str, pa.Table] = {}
    for table, columns in NEW_COLUMNS.items():
        since = _position(state.get(f"position:{table}"))
        rows = curated.added(table, since, positions.get(table), columns)
        if rows is None:
            return rebuild(curated, marts, rules)
        new[table] = rows
    report = MartUpdate("incremental", {t: rows.num_rows for t, rows in new.items()})
    if not any(rows.num_rows for rows in new.values()):
        report.mode = "unchanged"
        if _state(positions, rules) != state:
            marts.replace({}, _state(positions, rules))
        report.seconds = time.perf_counter() - started
        return report
    changes: dict[str, tuple[Slice, pa.Table]] = {}
    hours = plan.hours_of(new[IMPRESSIONS].column("event_time"))
    hours |= plan.hours_of(new[BIDS].column("event_time"))
    programmatic = new[IMPRESSIONS].filter(pc.is_valid(new[IMPRESSIONS].column("auction_id")))
    hours |= plan.hours_around(programmatic.column("event_time"), _us(rules.windows.auction_us))
    todo = plan.attribution_plan(new[IMPRESSIONS], new[CLICKS], new[CONVERSIONS], rules.widest)
    if todo is not None:
        impressions = curated.read(IMPRESSIONS, todo.impression_context, IMPRESSION_COLUMNS)
        clicks = curated.read(CLICKS, todo.click_context, CLICK_COLUMNS)
        conversions = curated.read(CONVERSIONS, todo.conversions, CONVERSION_COLUMNS)
        recheck = clicks.filter(todo.clicks.mask(clicks))
        matched = match_clicks(impressions, recheck, rules.windows, rules.campaigns)
        attributed = attribute_conversions(
            impressions, clicks, conversions, rules.windows, rules.campaigns
        )
        hours |= plan.changed_hours(marts.read(CLICKS_MART, todo.clicks), matched)
        hours |= plan.changed_hours(
            marts.read(CONVERSIONS_MART, todo.conversions), attributed, with_touches=True
        )
        changes[CLICKS_MART] = (todo.clicks, matched)
        changes[CONVERSIONS_MART] = (todo.conversions, attributed)
        report.users = len(todo.clicks.users or ())
        report.clicks, report.conversions = matched.num_rows, attributed.num_rows
    if hours:
        # Only hours with new impressions need their impression measures recounted.
        shown = plan.hours_of(new[IMPRESSIONS].column("event_time"))
        days = plan.day_ranges(hours)
        changes |= _rollups(curated, marts, rules, hours, shown, days, changes)
        report.hours = len(hours)
        report.days = sum((_date(hi) - _date(lo)).days for lo, hi in days)
    marts.replace(changes, _state(positions, rules))
    report.seconds = time.perf_counter() - started
    return report


def rebuild(curated: Curated, marts: Marts, rules: Rules) -> MartUpdate:
    """Recompute every mart from all curated rows."""
    started = time.perf_counter()
    positions = curated.positions()
    everything = Slice.everything()
    impressions = curated.read(IMPRESSIONS, everything, IMPRESSION_COLUMNS)
    clicks = curated.read(CLICKS, everything, CLICK_COLUMNS)
    conversions = curated.read(CONVERSIONS, everything, CONVERSION_COLUMNS)
    bids = curated.read(BIDS, everything, BID_COLUMNS)
    matched = match_clicks(impressions, clicks, rules.windows, rules.campaigns)
    attributed = attribute_conversions(
        impressions, clicks, conversions, rules.windows, rules.campaigns
    )
    hourly = campaign_hourly(
        impressions, matched, attributed, match_bids(bids, impressions, rules.windows)
    )
    daily = campaign_daily(hourly)
    marts.replace(
        {
            CLICKS_MART: (everything, matched),
            CONVERSIONS_MART: (everything, attributed),
            HOURLY_MART: (everything, hourly),
            DAILY_MART: (everything, daily),
        },
        _state(positions, rules),
    )
    return MartUpdate(
        "rebuild",
        {IMPRESSIONS: impressions.num_rows, CLICKS: clicks.num_rows},
        clicks=matched.num_rows,
        conversions=attributed.num_rows,
        hours=hourly.num_rows,
        days=daily.num_rows,
        seconds=time.perf_counter() - started,
    )


def _rollups(
    curated: Curated,
    marts: Marts,
    rules: Rules,
    hours: set[datetime],
    shown: set[datetime],
    days: tuple[Range, ...],
    changes: dict[str, tuple[Slice, pa.Table]],
) -> dict[str, tuple[Slice, pa.Table]]:
    """Recomputed ``campaign_hourly`` rows of ``hours`` and ``campaign_daily`` rows of ``days``.

    Hours in ``shown`` (new impressions) are recomputed whole; in the others only clicks,
    conversions, credit and bids are, the impression measures being kept. Attributed
    rows are read as they will be after ``changes`` are applied.
    """
    in_hours = plan.hour_ranges(hours)
    at = Slice("event_time", in_hours)
    impressions = curated.read(IMPRESSIONS, at, IMPRESSION_COLUMNS)
    near = Slice("event_time", plan.widened(in_hours, _us(rules.windows.auction_us)))
    auctions = curated.read(IMPRESSIONS, near, IMPRESSION_COLUMNS)
    auctions = auctions.filter(pc.is_valid(auctions.column("auction_id")))
    bids = match_bids(curated.read(BIDS, at, BID_COLUMNS), auctions, rules.windows)
    clicks = _after(marts, changes, CLICKS_MART, at)
    # Conversions up to the click-through window after an hour may hold touches in it.
    reach = _us(max(rules.widest.click_through_us, rules.widest.view_through_us))
    conversions = _after(
        marts,
        changes,
        CONVERSIONS_MART,
        Slice("event_time", plan.reaching_forward(in_hours, reach)),
    )
    whole = Slice("event_time", plan.hour_ranges(shown))
    hourly = campaign_hourly(
        impressions.filter(whole.mask(impressions)),
        clicks,
        conversions,
        bids,
        pa.array(sorted(shown), TS),
        touch_impressions=impressions,
    )
    if hours - shown:
        rest = sorted(hours - shown)
        responses = campaign_hourly(
            impressions.slice(0, 0), clicks, conversions, bids, pa.array(rest, TS), impressions
        )
        kept = marts.read(HOURLY_MART, Slice("hour", plan.hour_ranges(set(rest))))
        hourly = pa.concat_tables([hourly, with_impression_part(responses, kept)])
    hour_slice = Slice("hour", in_hours)
    same_days = marts.read(HOURLY_MART, Slice("hour", days))
    same_days = same_days.filter(pc.invert(hour_slice.mask(same_days)))
    daily = campaign_daily(pa.concat_tables([same_days.cast(hourly.schema), hourly]))
    day_slice = Slice("day", tuple((_date(lo), _date(hi)) for lo, hi in days))
    daily = daily.filter(day_slice.mask(daily))  # hours of other days rolled up too
    return {HOURLY_MART: (hour_slice, hourly), DAILY_MART: (day_slice, daily)}


def _after(
    marts: Marts, changes: dict[str, tuple[Slice, pa.Table]], table: str, where: Slice
) -> pa.Table:
    """Rows of a mart inside ``where`` as they will be once ``changes`` are applied."""
    rows = marts.read(table, where)
    if table not in changes:
        return rows
    replaced, fresh = changes[table]
    kept = rows.filter(pc.invert(replaced.mask(rows)))
    return pa.concat_tables([kept.cast(fresh.schema), fresh.filter(where.mask(fresh))])


def _state(positions: dict[str, int | None], rules: Rules) -> dict[str, str]:
    state = {FINGERPRINT: rules.fingerprint}
    for table in NEW_COLUMNS:
        if positions.get(table) is not None:
            state[f"position:{table}"] = str(positions[table])
    return state


def _position(text: str | None) -> int | None:
    return int(text) if text else None


def _date(bound: date) -> date:
    return bound.date() if isinstance(bound, datetime) else bound


def _us(microseconds: int) -> timedelta:
    return timedelta(microseconds=microseconds)
