"""Which slices of the marts new curated rows can change — pure functions of those rows.

Let A be the earliest new event (impression, click or conversion) and U the users with
new events. W, X, CT, VT are the widest click window, impression-id horizon,
click-through and view-through windows over all campaigns. Because every rule compares
a user's own events, and every window looks backwards from the later event:

* a click at t depends on the user's impressions in [t - max(W, X), t], so the clicks
  to recompute are U's clicks in [A, max(new impression + max(W, X), new click)];
* a conversion at t depends on the user's clicks in [t - CT, t] and impressions in
  [t - VT, t]: recompute U's conversions in
  [A, max(new impression + VT, new click + CT, new conversion)];
* everything outside those slices sees exactly the inputs it saw before.

Rollup rows are per hour; an hour changes when it holds a new impression or bid request,
a click or conversion whose attributed row changed, or a touch (old or new) of such a
conversion; the hours of the bids of a new programmatic impression's auction within its
window too (``maintain._auction_hours`` looks them up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels.windows import Windows
from advertisex.marts.store import Range, Slice, merge_ranges
from advertisex.model.columns import TS
from advertisex.util import engine
from advertisex.util.timeutil import HOUR_US, from_micros, moved

HOUR = timedelta(hours=1)
TICK = timedelta(microseconds=1)  # turns an inclusive end into a half-open one


@dataclass(frozen=True)
class AttributionPlan:
    """Slices to recompute (``clicks``, ``conversions``) and the inputs that needs."""

    clicks: Slice
    conversions: Slice
    impression_context: Slice
    click_context: Slice


def attribution_plan(
    impressions: pa.Table, clicks: pa.Table, conversions: pa.Table, widest: Windows
) -> AttributionPlan | None:
    """The attribution slices new rows (each with user_id and event_time) touch; None: none."""
    users = set()
    for rows in (impressions, clicks, conversions):
        users.update(pc.unique(rows.column("user_id")).to_pylist())
    if not users:
        return None
    span = {
        name: _span(rows)
        for name, rows in (
            ("impressions", impressions),
            ("clicks", clicks),
            ("conversions", conversions),
        )
    }
    start = min(lo for lo, _ in span.values() if lo is not None)
    us = timedelta(microseconds=1)
    click_reach = us * max(widest.click_us, widest.impression_id_us)
    click_end = _latest(_shift(span["impressions"][1], click_reach), span["clicks"][1])
    conversion_end = _latest(
        _shift(span["impressions"][1], us * widest.view_through_us),
        _shift(span["clicks"][1], us * widest.click_through_us),
        span["conversions"][1],
    )
    end = _latest(click_end, conversion_end)
    assert end is not None
    who = frozenset(users)
    look_back = us * max(widest.click_us, widest.impression_id_us, widest.view_through_us)
    return AttributionPlan(
        clicks=Slice("event_time", _range(start, click_end), who),
        conversions=Slice("event_time", _range(start, conversion_end), who),
        impression_context=Slice(
            "event_time", ((moved(start, -look_back), moved(end, TICK)),), who
        ),
        click_context=Slice(
            "event_time",
            ((moved(start, -us * widest.click_through_us), moved(end, TICK)),),
            who,
        ),
    )


def hours_of(times: pa.Array | pa.ChunkedArray) -> set[datetime]:
    """The UTC hours (as their first instant) that ``times`` fall in.

    A UTC column's hours are its microseconds floored (Arrow's ``floor_temporal`` of a zoned
    column looks each value up in the zone's rules: ≈ 56 ms a million values, a batch's
    impressions each incremental update).

    >>> from datetime import UTC
    >>> times = pa.array([datetime(2026, 12, 7, 1, 59, tzinfo=UTC), None,
    ...     datetime(1969, 12, 31, 23, 30, tzinfo=UTC)], pa.timestamp("us", "UTC"))
    >>> sorted(str(h) for h in hours_of(times))
    ['1969-12-31 23:00:00+00:00', '2026-12-07 01:00:00+00:00']
    """
    if len(times) == 0:
        return set()
    kind = times.type
    if kind != TS:  # another unit or zone: Arrow floors it in its own
        floored = pc.floor_temporal(times, unit="hour")
        return {t for t in pc.unique(floored).to_pylist() if t is not None}
    micros = pc.drop_null(times).cast(pa.int64()).to_numpy()
    hours = pc.unique(pa.array(micros // HOUR_US)).to_numpy()
    return {from_micros(int(h) * HOUR_US) for h in hours}


def hour_ranges(hours: set[datetime]) -> tuple[Range, ...]:
    return merge_ranges((h, moved(h, HOUR)) for h in hours)


def without(ranges: tuple[Range, ...], taken: tuple[Range, ...]) -> tuple[Range, ...]:
    """The parts of ``ranges`` outside every range of ``taken`` (both half-open).

    >>> at = lambda h: datetime(2026, 12, 7, h)
    >>> without(((at(1), at(5)),), ((at(2), at(3)), (at(4), at(6))))
    ((datetime.datetime(2026, 12, 7, 1, 0), datetime.datetime(2026, 12, 7, 2, 0)), (datetime.datetime(2026, 12, 7, 3, 0), datetime.datetime(2026, 12, 7, 4, 0)))
    """
    left: list[Range] = []
    for lo, hi in merge_ranges(ranges):
        for cut_lo, cut_hi in merge_ranges(taken):
            if cut_hi <= lo or cut_lo >= hi:
                continue
            if cut_lo > lo:
                left.append((lo, cut_lo))
            lo = max(lo, cut_hi)
            if lo >= hi:
                break
        if lo < hi:
            left.append((lo, hi))
    return tuple(left)


def day_ranges(hours: set[datetime]) -> tuple[Range, ...]:
    """The UTC days of ``hours`` as [midnight, next midnight) ranges."""
    days = {h.replace(hour=0, minute=0, second=0, microsecond=0) for h in hours}
    return merge_ranges((d, moved(d, timedelta(days=1))) for d in days)


def reaching_forward(ranges: tuple[Range, ...], reach: timedelta) -> tuple[Range, ...]:
    """``ranges`` with each end pushed ``reach`` later (events that may look back into them)."""
    return merge_ranges((lo, moved(hi, reach)) for lo, hi in ranges)


def widened(ranges: tuple[Range, ...], reach: timedelta) -> tuple[Range, ...]:
    return merge_ranges((moved(lo, -reach), moved(hi, reach)) for lo, hi in ranges)


def changed_hours(old: pa.Table, new: pa.Table, with_touches: bool = False) -> set[datetime]:
    """Hours of rows that differ between ``old`` and ``new`` (and of their touches)."""
    if old.num_rows == 0 and new.num_rows == 0:
        return set()
    touches = "UNION ALL SELECT unnest(touch_path).touch_time FROM diff" if with_touches else ""
    query = f"""
    WITH diff AS (
      (SELECT * FROM new EXCEPT ALL SELECT * FROM old)
      UNION ALL (SELECT * FROM old EXCEPT ALL SELECT * FROM new)
    )
    SELECT DISTINCT {engine.utc_hour("t")} AS hour
    FROM (SELECT event_time AS t FROM diff {touches})
    """
    hours = engine.run(query, old=old.cast(new.schema), new=new)
    return hours_of(hours.column("hour"))


def net_change(added: pa.Table, removed: pa.Table | None) -> pa.Table:
    """The rows of ``added`` that ``removed`` lacks and those of ``removed`` that ``added``
    lacks, counted as multisets over every column (the marts read no other): a replay takes
    rows out and processes their segments again, and the rows it gives back unchanged —
    processing is deterministic — change no mart.

    >>> old = pa.table({"id": ["a", "b", "b"], "n": [1, 2, 2]})
    >>> sorted(net_change(pa.table({"id": ["b", "c"], "n": [2, 3]}), old).to_pylist(),
    ...     key=str)
    [{'id': 'a', 'n': 1}, {'id': 'b', 'n': 2}, {'id': 'c', 'n': 3}]
    """
    if removed is None or removed.num_rows == 0:
        return added
    removed = removed.select(added.column_names).cast(added.schema)
    if added.num_rows == 0:
        return removed
    if added.num_rows == removed.num_rows:  # the usual replay: the same rows, sorted alike
        order = [(name, "ascending") for name in added.column_names]
        if added.sort_by(order).equals(removed.sort_by(order)):
            return added.schema.empty_table()
    query = """
    (SELECT * FROM added EXCEPT ALL SELECT * FROM removed)
    UNION ALL (SELECT * FROM removed EXCEPT ALL SELECT * FROM added)
    """
    return engine.run(query, added=added, removed=removed).cast(added.schema)


def _span(rows: pa.Table) -> tuple[datetime | None, datetime | None]:
    if rows.num_rows == 0:
        return None, None
    bounds = pc.min_max(rows.column("event_time")).as_py()
    return bounds["min"], bounds["max"]


def _shift(t: datetime | None, by: timedelta) -> datetime | None:
    return None if t is None else moved(t, by)


def _latest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return max(present) if present else None


def _range(start: datetime, end: datetime | None) -> tuple[Range, ...]:
    return () if end is None or end < start else ((start, moved(end, TICK)),)
