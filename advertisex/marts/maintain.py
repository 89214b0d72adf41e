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

import functools
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from functools import cached_property
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels.attribute import CONVERSION_COLUMNS, attribute_conversions
from advertisex.kernels.correlate import (
    BID_COLUMNS,
    CLICK_COLUMNS,
    IMPRESSION_COLUMNS,
    match_clicks,
)
from advertisex.kernels.rollup import (
    BID_MEASURES,
    auction_measures,
    campaign_daily,
    campaign_hourly,
    with_impression_part,
)
from advertisex.kernels.windows import Windows, campaign_table, fingerprint, widest
from advertisex.marts import plan, taken
from advertisex.marts.store import Curated, Marts, Range, Slice, merge_ranges
from advertisex.model.columns import TS
from advertisex.model.marts import (
    ATTRIBUTED_CLICKS,
    ATTRIBUTED_CONVERSIONS,
    CAMPAIGN_HOURLY,
    INPUTS,
)
from advertisex.model.marts import (
    ATTRIBUTED_CLICKS_TABLE as CLICKS_MART,
)
from advertisex.model.marts import (
    ATTRIBUTED_CONVERSIONS_TABLE as CONVERSIONS_MART,
)
from advertisex.model.marts import (
    CAMPAIGN_DAILY_TABLE as DAILY_MART,
)
from advertisex.model.marts import (
    CAMPAIGN_HOURLY_TABLE as HOURLY_MART,
)
from advertisex.model.schemas import TABLES
from advertisex.util.timeutil import moved

# How a partition's output is ordered: each kernel's own ORDER BY (nulls last), so that
# outputs computed per partition and concatenated read the same as one computed whole.
ORDER = {
    "matched": ("campaign_id", "event_time", "event_id"),
    "attributed": ("campaign_id", "event_time", "event_id"),
    "bids": ("campaign_id", "hour", "ad_creative_id", "country", "device_type"),
    "hourly": ("campaign_id", "hour", "ad_creative_id", "country", "device_type"),
}

IMPRESSIONS, CLICKS, CONVERSIONS, BIDS = INPUTS
# What the planner needs of new rows, per curated table.
NEW_COLUMNS = {
    IMPRESSIONS: ("user_id", "event_time", "auction_id"),
    CLICKS: ("user_id", "event_time"),
    CONVERSIONS: ("user_id", "event_time"),
    BIDS: ("event_time",),
}
# Every column the marts read of each curated table (the whole rows a first build reads;
# NEW_COLUMNS are among them): what a batch keeps of its rows for the update after it
# (``runners.runner``).
CURATED_READS = {
    IMPRESSIONS: IMPRESSION_COLUMNS,
    CLICKS: CLICK_COLUMNS,
    CONVERSIONS: CONVERSION_COLUMNS,
    BIDS: BID_COLUMNS,
}
FINGERPRINT = "fingerprint"
# The marts an update replaces (besides their state).
MART_TABLES = (CLICKS_MART, CONVERSIONS_MART, HOURLY_MART, DAILY_MART)
# More runs of changed hours than this and an update rebuilds the marts (_scattered). A
# day of late clicks re-rolled 7 runs (216 hours) of 10 M impressions' marts and 32 (146
# hours) of 1 M's (bench/correlate.py); 250 runs, one impression a week, took 3 minutes
# on a lake whose tables held ≈ 9,000 day partitions each, where a rebuild took 66 s.
MAX_HOUR_RUNS = 64
# The open end of a rebuild's slices when it keeps the marts' oldest rows.
END = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class MatchingRules:
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
    # A rebuild that kept the marts' rows before this day (the curated tables no longer
    # hold what they were computed from: retention took it); None: everything recomputed.
    recomputed_from: date | None = None
    # A rebuild over curated tables that hold no rows while the marts hold some: every
    # mart row was kept as it was (there is nothing to recompute them from).
    kept_everything: bool = False

    @property
    def kept_note(self) -> str | None:
        """What a rebuild that kept the marts' oldest rows says of them (None: it kept none)."""
        if self.kept_everything:
            return (
                "the curated tables hold no rows to recompute the marts from (retention took "
                "every day they were computed from): the marts were kept as they were"
            )
        if self.recomputed_from is None:
            return None
        return (
            f"the marts were recomputed from {self.recomputed_from:%Y-%m-%d} on; their rows "
            "before it were kept as they were (retention took the curated days they were "
            "computed from)"
        )


@dataclass(frozen=True)
class Rows:
    """The rows of a curated table inside a slice, read wherever the kernel runs."""

    table: str
    where: Slice
    columns: tuple[str, ...]

    @property
    def schema(self) -> pa.Schema:
        """What the rows are read as: the table's types of ``columns``."""
        return TABLES[self.table].projected(self.columns)


class Kernels(Protocol):
    """Where the mart kernels run. Each step is partitionable by a key — every rule
    compares events that share it — so an engine may split the rows by that key, run
    the step on each part and concatenate (sorted by :data:`ORDER`):

    * ``correlate`` by ``user_id``: clicks → impressions, conversions → touches;
    * ``bids`` by ``auction_id``: bid requests → the impression that won them;
    * ``hourly`` by ``campaign_id``: the rollup rows (view touches and window-matched
      clicks are always of the conversion's own campaign; a click a postback named may
      be another's: a part needs ``kernels.rollup.named_clicks`` of its conversions).

    ``advertisex.marts.local`` runs them in this process, ``advertisex.marts.spark`` on Spark.
    """

    #: Whether :meth:`correlate` and :meth:`bids` may run at once on two threads: a
    #: rebuild's auctions need nothing of its attribution.
    concurrent: bool

    def correlate(
        self,
        impressions: Rows,
        clicks: Rows,
        conversions: Rows,
        recheck: Slice,
        rules: MatchingRules,
    ) -> tuple[pa.Table, pa.Table]:
        """(attributed clicks of the clicks inside ``recheck``, attributed conversions)."""
        ...

    def bids(self, bids: Rows, auctions: Rows, windows: Windows) -> pa.Table:
        """The matched bids' :func:`~advertisex.kernels.rollup.bid_measures` (rows of one key
        from several parts are not summed: the rollup sums them)."""
        ...

    def shown(self, impressions: Rows, counted: Slice) -> pa.Table | None:
        """:func:`~advertisex.kernels.rollup.shown_hourly` of the impressions inside
        ``counted``, where these kernels count them apart from the rollup's other inputs
        (a rebuild then counts them while the auctions are matched, and hands them to
        :meth:`hourly`); None where :meth:`hourly` counts them itself."""
        ...

    def hourly(
        self,
        impressions: Rows,
        counted: Slice,
        given: dict[str, pa.Table],
        hours: list[datetime] | None,
        shown: pa.Table | None = None,
    ) -> pa.Table:
        """``campaign_hourly`` of ``hours`` (None: all) counting the impressions inside
        ``counted`` (``shown``: as :meth:`shown` counted them); all of ``impressions`` are
        where view-through touches are found; ``given`` holds the other inputs
        (:func:`responses`)."""
        ...


def correlate_part(
    tables: dict[str, pa.Table], recheck: Slice, windows: Windows, campaigns: pa.Table | None
) -> dict[str, pa.Table]:
    """``Kernels.correlate`` on one part (every row of its users): impressions, clicks, conversions."""
    impressions, clicks, conversions = (
        tables["impressions"],
        tables["clicks"],
        tables["conversions"],
    )
    return {
        "matched": match_clicks(impressions, recheck.rows_of(clicks), windows, campaigns),
        "attributed": attribute_conversions(impressions, clicks, conversions, windows, campaigns),
    }


def bids_part(tables: dict[str, pa.Table], windows: Windows) -> dict[str, pa.Table]:
    """``Kernels.bids`` on one part (every row of its auctions): bids, impressions."""
    return {"bids": auction_measures(tables["bids"], tables["impressions"], windows)}


def responses(clicks: pa.Table, conversions: pa.Table, bids: pa.Table) -> dict[str, pa.Table]:
    """The rollup's inputs besides impressions — attributed clicks and conversions, the
    matched bids' measures — named as :func:`hourly_part` reads them."""
    return {"clicks": clicks, "conversions": conversions, "bids": bids}


def hourly_part(
    tables: dict[str, pa.Table], counted: Slice, hours: list[datetime] | None
) -> dict[str, pa.Table]:
    """``Kernels.hourly`` on one part (every row of its campaigns): impressions and the
    :func:`responses`; ``touch_impressions``, when given, are where view-through touches are
    found instead of the impressions; ``named_clicks``, when given, the clicks of other
    campaigns the part's conversions named (``kernels.rollup.named_clicks``); ``shown``,
    when given, the counted impressions' ``kernels.rollup.shown_hourly``."""
    impressions, clicks = tables["impressions"], tables["clicks"]
    named = tables.get("named_clicks")
    return {
        "hourly": campaign_hourly(
            counted.rows_of(impressions),
            clicks,
            tables["conversions"],
            tables["bids"],
            None if hours is None else pa.array(hours, TS),
            touch_impressions=tables.get("touch_impressions", impressions),
            touch_clicks=None if named is None else pa.concat_tables([clicks, named]),
            shown=tables.get("shown"),
        )
    }


# What each part's outputs are, by the name the part functions give them.
OUTPUTS = {
    "matched": ATTRIBUTED_CLICKS,
    "attributed": ATTRIBUTED_CONVERSIONS,
    "bids": BID_MEASURES,
    "hourly": CAMPAIGN_HOURLY,
}


def ordered(tag: str, parts: list[pa.Table]) -> pa.Table:
    """The parts' outputs of ``tag`` as one table in the kernel's own order (nulls last,
    as the engine has it)."""
    schema = OUTPUTS[tag]
    if not parts:
        return schema.empty_table()
    table = pa.concat_tables([p.cast(schema) for p in parts])
    return table.sort_by([(c, "ascending") for c in ORDER[tag]])


def update(
    curated: Curated,
    marts: Marts,
    rules: MatchingRules,
    kernels: Kernels | None = None,
    removed: dict[str, pa.Table] | None = None,
    progress: Progress | None = None,
    replaced: Mapping[str, taken.Taken] | None = None,
) -> MartUpdate:
    """Fold the curated rows appended since the last run into the marts.

    ``removed``: rows taken out of the curated tables (an erasure; ``curated`` reads as if
    they were gone). Their slices are recomputed like those of new rows. ``replaced``: rows
    a replay took out (the hashes of their :data:`CURATED_READS` columns) before it
    appended its rows again; only the rows that differ (:func:`taken.change`) are folded
    in, none when the replay gave back what it took. ``progress`` is told of each of the
    four steps (``marts: new rows`` … ``marts: commit``).
    """
    started = time.perf_counter()
    kernels = kernels or _local(curated)
    state = marts.state()
    positions = curated.positions()
    if state.get(FINGERPRINT) != rules.fingerprint:
        return rebuild(curated, marts, rules, kernels, progress)
    step = _steps(progress, ("new rows", "attribution", "rollups", "commit"))
    new: dict[str, pa.Table] = {}
    for table, columns in NEW_COLUMNS.items():
        since = _position(state.get(f"position:{table}"))
        out = (replaced or {}).get(table)
        if out is None or out.hashes.size == 0:
            rows = curated.added(table, since, positions.get(table), columns)
        else:
            rows = _replay_change(curated, table, since, positions.get(table), out)
        if rows is None:
            return rebuild(curated, marts, rules, kernels, progress)
        rows = rows.select(list(columns))
        gone = (removed or {}).get(table)
        if gone is not None and gone.num_rows:
            rows = pa.concat_tables([rows, gone.select(list(columns)).cast(rows.schema)])
        new[table] = rows
    report = MartUpdate("incremental", {t: rows.num_rows for t, rows in new.items()})
    step("new rows")
    if not any(rows.num_rows for rows in new.values()):
        report.mode = "unchanged"
        if _state(positions, rules) != state:
            marts.replace({}, _state(positions, rules))
        report.seconds = time.perf_counter() - started
        return report
    changes: dict[str, tuple[Slice, pa.Table]] = {}
    # Hours whose impression measures change (new impressions), and whose bid measures do:
    # new bids', and those of the bids new programmatic impressions may win.
    shown = plan.hours_of(new[IMPRESSIONS].column("event_time"))
    programmatic = new[IMPRESSIONS].filter(pc.is_valid(new[IMPRESSIONS].column("auction_id")))
    bidding = plan.hours_of(new[BIDS].column("event_time"))
    bidding |= plan.hours_of(programmatic.column("event_time"))
    bidding |= _auction_hours(curated, programmatic, _us(rules.windows.auction_us), bidding)
    hours = shown | bidding
    if _scattered(hours):
        return rebuild(curated, marts, rules, kernels, progress)
    todo = plan.attribution_plan(
        _responded(curated, new[IMPRESSIONS]), new[CLICKS], new[CONVERSIONS], rules.widest
    )
    # The new rows have said what they change: let them go before the kernels read the
    # slices (a 10 M backlog's 5.4 M new impressions were held to the end, ≈ 0.3 GiB
    # under the rollups' peak).
    del new, programmatic
    if todo is not None:
        matched, attributed = kernels.correlate(
            Rows(IMPRESSIONS, todo.impression_context, IMPRESSION_COLUMNS),
            Rows(CLICKS, todo.click_context, CLICK_COLUMNS),
            Rows(CONVERSIONS, todo.conversions, CONVERSION_COLUMNS),
            todo.clicks,
            rules,
        )
        hours |= plan.changed_hours(marts.read(CLICKS_MART, todo.clicks), matched)
        hours |= plan.changed_hours(
            marts.read(CONVERSIONS_MART, todo.conversions), attributed, with_touches=True
        )
        changes[CLICKS_MART] = (todo.clicks, matched)
        changes[CONVERSIONS_MART] = (todo.conversions, attributed)
        report.users = len(todo.clicks.users or ())
        report.clicks, report.conversions = matched.num_rows, attributed.num_rows
    step("attribution")
    if _scattered(hours):
        return rebuild(curated, marts, rules, kernels, progress)
    if hours:
        # Only hours with new impressions need their impression measures recounted, and
        # only those of ``bidding`` their bid measures.
        days = plan.day_ranges(hours)
        changes |= _rollups(kernels, marts, rules, hours, shown, bidding, days, changes)
        report.hours = len(hours)
        report.days = sum((_date(hi) - _date(lo)).days for lo, hi in days)
    step("rollups")
    marts.replace(changes, _state(positions, rules))
    step("commit")
    report.seconds = time.perf_counter() - started
    return report


def rebuild(
    curated: Curated,
    marts: Marts,
    rules: MatchingRules,
    kernels: Kernels | None = None,
    progress: Progress | None = None,
) -> MartUpdate:
    """Recompute the marts from the curated tables (``progress``: told of each step).

    Where retention took curated days that the marts still hold rows of (the marts kept
    longer), only what the curated tables can still answer is recomputed: the marts'
    rows from :func:`recompute_from` on; older ones are kept as they are.
    """
    started = time.perf_counter()
    kernels = kernels or _local(curated)
    step = _steps(progress, ("attribution", "auctions", "rollups", "commit"))
    positions = curated.positions()
    # The marts' first day first: a first build (none) reads no curated table's manifests
    # for their first days (on the main thread before any kernel runs: ≈ 5 ms of CPU).
    if marts.first_day() is not None and not _first_days(curated):
        # Retention took every curated day while the marts were kept longer (and no setting
        # says so any more, or it would be a cutoff): recomputing would replace every mart
        # row by nothing. The rules and positions are saved, so the next batch updates.
        marts.replace({}, _state(positions, rules))
        step("commit")
        return MartUpdate("rebuild", seconds=time.perf_counter() - started, kept_everything=True)
    since = recompute_from(curated, marts, rules)
    if since is None:
        fresh = read = Slice.everything()
    else:
        fresh = Slice("event_time", ((since, END),))
        read = Slice("event_time", ((moved(since, -_reach(rules.widest)), END),))
    impressions = Rows(IMPRESSIONS, read, IMPRESSION_COLUMNS)
    auctions = Rows(BIDS, fresh, BID_COLUMNS)
    # The auctions on a second thread while the attribution runs, when the kernels allow it
    # (in this process the engine and Arrow work outside the GIL: the marts' first build
    # kept about one core of two busy).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="marts-auctions") as beside:
        won = (
            beside.submit(kernels.bids, auctions, impressions, rules.windows)
            if kernels.concurrent
            else None
        )
        matched, attributed = kernels.correlate(
            impressions,
            Rows(CLICKS, read, CLICK_COLUMNS),
            Rows(CONVERSIONS, fresh, CONVERSION_COLUMNS),
            fresh,
            rules,
        )
        step("attribution")
        if since is None:  # all of each mart: stored while the rest is computed, where it can
            marts.offer(CLICKS_MART, matched)
            marts.offer(CONVERSIONS_MART, attributed)
        # The impressions counted while the auctions are still matched (the attribution
        # is the shorter of the two), where the kernels count them apart: the rollup then
        # only adds the responses to them.
        shown = kernels.shown(impressions, fresh) if won else None
        bids = won.result() if won else kernels.bids(auctions, impressions, rules.windows)
    step("auctions")
    given = responses(matched, attributed, bids)
    hourly = kernels.hourly(impressions, fresh, given, None, shown)
    slices = dict.fromkeys(MART_TABLES, fresh)
    if since is not None:
        # Conversions from ``since`` on credit touches before it too: those hours are kept.
        slices[HOURLY_MART] = Slice("hour", ((since, END),))
        slices[DAILY_MART] = Slice("day", ((since.date(), END.date()),))
        hourly = hourly.filter(slices[HOURLY_MART].mask(hourly))
    else:
        marts.offer(HOURLY_MART, hourly)
    daily = campaign_daily(hourly)
    if since is None:
        marts.offer(DAILY_MART, daily)
    step("rollups")
    marts.replace(
        {
            CLICKS_MART: (slices[CLICKS_MART], matched),
            CONVERSIONS_MART: (slices[CONVERSIONS_MART], attributed),
            HOURLY_MART: (slices[HOURLY_MART], hourly),
            DAILY_MART: (slices[DAILY_MART], daily),
        },
        _state(positions, rules),
    )
    step("commit")
    return MartUpdate(
        "rebuild",
        {
            IMPRESSIONS: int(pc.sum(hourly.column("impressions")).as_py() or 0),
            CLICKS: matched.num_rows,
        },
        clicks=matched.num_rows,
        conversions=attributed.num_rows,
        hours=hourly.num_rows,
        days=daily.num_rows,
        seconds=time.perf_counter() - started,
        recomputed_from=None if since is None else since.date(),
    )


def recompute_from(curated: Curated, marts: Marts, rules: MatchingRules) -> datetime | None:
    """The midnight (UTC) from which a rebuild recomputes the marts; None: from the start.

    Retention takes whole days, so the curated tables hold every row from the later of
    their earliest day and each table's retention cutoff on (a table kept shorter than
    the others, bids say, sets it). Where the marts hold rows of an earlier day (the
    marts kept longer), a mart row from that day plus the widest window on looks back at
    nothing retention took: from the next midnight on (a daily rollup's day stays whole)
    the marts are recomputed; the rows before it were computed while their inputs were
    there, and are kept. Conservative where it must choose: a cutoff reckoned from today
    while retention last ran days ago keeps a few more days as they were.
    """
    oldest = marts.first_day()
    if oldest is None:  # a first build
        return None
    firsts = _first_days(curated)
    cutoffs = [day for table in NEW_COLUMNS if (day := curated.kept_from(table)) is not None]
    if not (firsts or cutoffs):
        return None
    whole = max([min(firsts, default=oldest), *cutoffs])
    if oldest >= whole:  # the curated tables hold everything the marts were computed from
        return None
    since = moved(datetime.combine(whole, dtime(), UTC), _reach(rules.widest))
    midnight = datetime.combine(since.date(), dtime(), UTC)
    return midnight if midnight == since else moved(midnight, timedelta(days=1))


def _first_days(curated: Curated) -> list[date]:
    """The earliest day (UTC) of each curated table that holds rows."""
    return [day for table in NEW_COLUMNS if (day := curated.first_day(table)) is not None]


def _reach(widest: Windows) -> timedelta:
    """How far back any mart row looks at curated rows: the widest of every window."""
    return _us(
        max(
            widest.click_us,
            widest.impression_id_us,
            widest.click_through_us,
            widest.view_through_us,
            widest.auction_us,
        )
    )


def _rollups(
    kernels: Kernels,
    marts: Marts,
    rules: MatchingRules,
    hours: set[datetime],
    shown: set[datetime],
    bidding: set[datetime],
    days: tuple[Range, ...],
    changes: dict[str, tuple[Slice, pa.Table]],
) -> dict[str, tuple[Slice, pa.Table]]:
    """Recomputed ``campaign_hourly`` rows of ``hours`` and ``campaign_daily`` rows of ``days``.

    Hours in ``shown`` (new impressions) are recomputed whole; in the others only clicks,
    conversions, credit and bids are, the impression measures being kept. Bid measures are
    recomputed in the hours of ``bidding`` only (each of ``hours``), kept elsewhere: an
    hour recomputed for a conversion's credit (a touch in it) matched its bids again, every
    bid of the hour with every impression within the auction window of it. Attributed rows
    are read as they will be after ``changes`` are applied.
    """
    in_hours = plan.hour_ranges(hours)
    at = Slice("event_time", in_hours)
    # The stored rollup rows of the days touched, read once: the bid measures and the
    # impression parts kept of some hours, and the daily rollup, all come from them.
    stored = marts.read(HOURLY_MART, Slice("hour", days))
    in_bidding = plan.hour_ranges(bidding)
    near = plan.widened(in_bidding, _us(rules.windows.auction_us))
    # One read of the impressions serves the bids' matching (those within the auction
    # window of the bidding hours), the count of the new hours and the rollup's touches
    # (those of the recomputed hours): each asked for its own slice, a backlog's batch had
    # its million impressions read and held twice, at the update's peak. More
    # impressions than a step needs change nothing: no bid of the bidding hours is within
    # the window of one outside ``near``, and a touch outside ``hours`` credits an hour the
    # rollup leaves out.
    impressions = Rows(
        IMPRESSIONS, Slice("event_time", merge_ranges([*in_hours, *near])), IMPRESSION_COLUMNS
    )
    whole = Slice("event_time", plan.hour_ranges(shown))
    # The bids matched on a second thread while the new hours' impressions are counted,
    # where the kernels allow it (as a rebuild does): one after the other, a backlog's
    # update kept one core of two busy.
    match_bids = functools.partial(
        kernels.bids,
        Rows(BIDS, Slice("event_time", in_bidding), BID_COLUMNS),
        impressions,
        rules.windows,
    )
    counted = None  # the new hours' impressions counted apart (None: by the rollup)
    if kernels.concurrent and shown:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="marts-auctions") as beside:
            matching = beside.submit(match_bids)
            counted = kernels.shown(impressions, whole)
            bids = matching.result()
    else:
        bids = match_bids()
    if hours - bidding:
        kept = Slice("hour", plan.hour_ranges(hours - bidding)).rows_of(stored)
        kept = kept.filter(pc.greater(kept.column("bid_requests"), 0))  # rows with bids
        bids = pa.concat_tables([bids, kept.select(BID_MEASURES.names).cast(BID_MEASURES)])
    clicks = _after(marts, changes, CLICKS_MART, at)
    # Conversions up to the click-through window after an hour may hold touches in it.
    reach = _us(max(rules.widest.click_through_us, rules.widest.view_through_us))
    conversions = _after(
        marts,
        changes,
        CONVERSIONS_MART,
        Slice("event_time", plan.reaching_forward(in_hours, reach)),
    )
    given = responses(clicks, conversions, bids)
    hourly = kernels.hourly(impressions, whole, given, sorted(shown), counted)
    if hours - shown:
        rest = sorted(hours - shown)
        nothing = Slice("event_time", ())  # measures of responses only
        answered = kernels.hourly(impressions, nothing, given, rest)
        kept = Slice("hour", plan.hour_ranges(set(rest))).rows_of(stored)
        hourly = pa.concat_tables([hourly, with_impression_part(answered, kept)])
    hour_slice = Slice("hour", in_hours)
    same_days = stored.filter(pc.invert(hour_slice.mask(stored)))
    daily = campaign_daily(pa.concat_tables([same_days.cast(hourly.schema), hourly]))
    day_slice = Slice("day", tuple((_date(lo), _date(hi)) for lo, hi in days))
    daily = daily.filter(day_slice.mask(daily))  # hours of other days rolled up too
    return {HOURLY_MART: (hour_slice, hourly), DAILY_MART: (day_slice, daily)}


Progress = Callable[[str, int, int], None]  # (stage, done, total), as the runners report


def _local(curated: Curated) -> Kernels:
    from advertisex.marts.local import LocalKernels  # it runs the part functions above

    return LocalKernels(curated, spill_dir=curated.spill_dir())


def _steps(progress: Progress | None, names: tuple[str, ...]) -> Callable[[str], None]:
    """``step(name)``: tell ``progress`` that step ``name`` of ``names`` is done."""

    def step(name: str) -> None:
        if progress is not None:
            progress(f"marts: {name}", names.index(name) + 1, len(names))

    return step


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


def _responded(curated: Curated, impressions: pa.Table) -> pa.Table:
    """The new ``impressions`` whose users clicked or converted at or after them: only
    those can change an attributed row (every rule looks back from the later event).
    Under a live load almost every new impression is its user's latest, and the
    attribution's users were every user shown an ad in the batches (≈ 9,600 a minute at
    2,000 events/s, each with a day of impressions to match), where ≈ 700 clicked."""
    if not impressions.num_rows:
        return impressions
    first = pc.min(impressions.column("event_time")).as_py()
    later = Slice("event_time", ((first, END),))
    # Every response since the first new impression, whoever's: the join below keeps the
    # impressions' users only. Narrowed to those users first, a backlog's million new
    # impressions made a set of their users twice (0.14 s of CPU of a 2 M batch's update,
    # 0.07 s now) for the few thousand clicks and conversions the join takes in a moment.
    responded = pa.concat_tables(
        [
            curated.chunks(table, later, ("user_id", "event_time")).whole()
            for table in (CLICKS, CONVERSIONS)
        ]
    )
    if not responded.num_rows:
        return impressions.slice(0, 0)
    # Each user's last response; an impression counts when it is not after it.
    last = responded.group_by("user_id").aggregate([("event_time", "max")])
    joined = impressions.join(last, "user_id", join_type="inner")
    return joined.filter(
        pc.less_equal(joined.column("event_time"), joined.column("event_time_max"))
    ).select(impressions.column_names)


def _auction_hours(
    curated: Curated, programmatic: pa.Table, window: timedelta, hours: set[datetime]
) -> set[datetime]:
    """The hours besides ``hours`` of the bid requests new ``programmatic`` impressions
    may win: those of their auctions within the auction window of them (a bid's measures
    change only when an impression of its auction comes). Every hour within the window of
    a programmatic impression was recomputed before: under a live load each update
    recomputed the previous hour's bids in full — every bid of it and every impression
    within its window — where the impressions' bids are in the hour being filled (which
    ``hours``, the impressions' own, holds already) but near an hour's turn. The bids are
    looked up by two small columns outside ``hours`` only."""
    if not programmatic.num_rows:
        return set()
    span = pc.min_max(programmatic.column("event_time")).as_py()
    # Inclusive: a bid exactly ``window`` away is matched (kernels.correlate.MATCH_BIDS_SQL).
    reach = ((moved(span["min"], -window), moved(span["max"], window + plan.TICK)),)
    elsewhere = plan.without(reach, plan.hour_ranges(hours))
    if not elsewhere:
        return set()
    bids = curated.chunks(BIDS, Slice("event_time", elsewhere), ("auction_id", "event_time"))
    rows = bids.whole()
    if not rows.num_rows:
        return set()
    ids = programmatic.column("auction_id")  # never null (programmatic)
    if rows.num_rows < len(ids):
        # Fewer bids outside the hours than new impressions (a backlog's batch: a million
        # impressions against the bids at its edges): the set is made of the bids' auctions
        # and the impressions probe it, not a set of a million auction ids (0.17 s of CPU of
        # the 2 M batch's update, by cProfile; 0.02 s now).
        ids = ids.filter(pc.is_in(ids, value_set=pc.unique(rows.column("auction_id"))))
    auctions = pc.unique(ids)
    won = rows.filter(pc.fill_null(pc.is_in(rows.column("auction_id"), value_set=auctions), False))
    return plan.hours_of(won.column("event_time"))


def _scattered(hours: set[datetime]) -> bool:
    """Whether ``hours`` are too scattered for an update: each run of them is a clause of
    the filters its reads and its replace give the tables, which pyiceberg weighs against
    every data file in Python. Rows timed across decades (hostile or broken producers: an
    impression a week since 1970) made thousands of runs, and an update of 3,000 of them
    ran for more than 13 minutes; a rebuild reads each table once."""
    return len(plan.hour_ranges(hours)) > MAX_HOUR_RUNS


def _state(positions: dict[str, int | None], rules: MatchingRules) -> dict[str, str]:
    state = {FINGERPRINT: rules.fingerprint}
    for table in NEW_COLUMNS:
        if positions.get(table) is not None:
            state[f"position:{table}"] = str(positions[table])
    return state


def _replay_change(
    curated: Curated, table: str, since: int | None, until: int | None, out: taken.Taken
) -> pa.Table | None:
    """The rows of ``table`` that differ between those appended since ``since`` (a replay's,
    the rows it processed again) and those it took ``out`` before (:func:`taken.change`);
    None when they cannot all be read."""
    columns = CURATED_READS[table]
    parts = curated.added_parts(table, since, until, columns)
    if parts is None:
        return None
    return taken.change(parts, out, TABLES[table].projected(columns))


def _position(text: str | None) -> int | None:
    return int(text) if text else None


def _date(bound: date) -> date:
    return bound.date() if isinstance(bound, datetime) else bound


def _us(microseconds: int) -> timedelta:
    return timedelta(microseconds=microseconds)
