"""The mart maintenance interfaces on the lake's Iceberg tables, and the runner's entry point.

* Positions are snapshot ids. The rows appended since one are read from the data files
  the appends after it added. Upkeep snapshots are stepped over: a compaction keeps the
  rows, retention drops days older than any window reaches, and an erasure updates the
  marts in its own transaction. A replay's removal is stepped over by the update after it
  when the replay hands over the rows it took out (:class:`Replayed`): the update folds in
  what differs between those and the rows appended again. Any other rewrite rebuilds the
  marts.
* A slice replacement is pyiceberg's ``overwrite`` with the slice as row filter (a
  delete and an append in one transaction, copy-on-write), or, for a slice of many time
  ranges or of some users, the same copy-on-write by the files of its days
  (:meth:`IcebergMarts._swap_days`); the replacements of all marts and the new
  ``marts.state`` rows commit in one catalog transaction.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.errors import MartOverflowError
from advertisex.lake.datafiles import WrittenFile, add_files
from advertisex.lake.history import (
    COMPACTION,
    ERASURE,
    RETENTION,
    all_appended_here,
    appended_since,
    live_files,
)
from advertisex.lake.rewrite import commit_swap
from advertisex.marts import maintain
from advertisex.marts.store import Bound, Chunks, Slice, merge_ranges, storage_errors
from advertisex.marts.taken import Taken
from advertisex.model.contracts import MAX_CONVERSION_VALUE, MAX_PRICE
from advertisex.model.marts import STATE, STATE_TABLE
from advertisex.model.schemas import ERASURES_TABLE, TABLES
from advertisex.util.timeutil import utcnow

EPOCH = date(1970, 1, 1)  # day partitions count days since it

if TYPE_CHECKING:
    from advertisex.config import Settings
    from advertisex.lake.tables import Lake, PlannedRead

# Snapshots the marts need nothing from (see the module docstring).
_STEP_OVER = (COMPACTION, RETENTION, ERASURE)


@dataclass(frozen=True)
class Replayed:
    """What a landing replay took out of the curated tables the marts read
    (``runners.replay``): per table, the rows (the hashes of their
    ``maintain.CURATED_READS`` columns and the files to read them back from,
    :class:`~advertisex.marts.taken.Taken`) and the snapshot that took them out; and the
    marts' state when it did. The update after
    the replay steps over those snapshots while the marts still have that state (after
    another update in between, which rebuilt them, the rows are no longer news)."""

    rows: dict[str, Taken]
    snapshots: dict[str, int]
    marts_state: dict[str, str]


def update_marts(
    lake: Lake,
    settings: Settings,
    kernels: maintain.Kernels | None = None,
    progress: maintain.Progress | None = None,
    replayed: Replayed | None = None,
) -> maintain.MartUpdate | None:
    """Bring the marts up to date with the curated tables (the runner calls this after a
    run, a quarantine replay after its commit); ``kernels`` says where the kernels run
    (default: in this process); ``replayed``: what a landing replay before the run took
    out. A sum past 64 bits is :class:`MartOverflowError`."""
    if not settings.correlation.update_marts:
        return None

    def update(erasures: str | None) -> maintain.MartUpdate:
        rules = rules_for(lake, settings)
        # The marts' tables are opened (a new lake's created), and a rebuilt mart's files
        # written, on a thread of their own while the rest is computed (IcebergMarts): in the
        # marts' commit, on the update's serial tail, they kept one core busy and the other
        # idle.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="marts-beside") as beside:
            marts = IcebergMarts(lake, beside, erasures)
            known = replayed is not None and replayed.marts_state == marts.state()
            stepped = replayed.snapshots.values() if replayed is not None and known else ()
            try:
                return maintain.update(
                    IcebergCurated(lake, stepped),
                    marts,
                    rules,
                    kernels,
                    progress=progress,
                    replaced=replayed.rows if replayed is not None and known else None,
                )
            finally:
                marts.discard_offered()

    try:
        return _on_fresh_tables(lake, update)
    except OverflowError as error:
        raise MartOverflowError(
            f"the marts were not brought up to date: {error}",
            hint=f"every record's amount is at most {MAX_PRICE:,} (a price or cost) or "
            f"{MAX_CONVERSION_VALUE:,} (a conversion value), so one campaign's hour or day "
            "holds thousands at that bound: find their users with advertisex query (the "
            "largest costs, prices and conversion values by campaign and hour), erase them "
            "with advertisex forget, then run advertisex process again",
        ) from None


def rebuild_marts(
    lake: Lake,
    settings: Settings,
    kernels: maintain.Kernels | None = None,
    progress: maintain.Progress | None = None,
) -> maintain.MartUpdate:
    """Recompute every mart from the curated tables."""

    def rebuild(erasures: str | None) -> maintain.MartUpdate:
        curated = IcebergCurated(lake)
        rules = rules_for(lake, settings)
        marts = IcebergMarts(lake, erasures=erasures)
        return maintain.rebuild(curated, marts, rules, kernels, progress)

    return _on_fresh_tables(lake, rebuild)


# What an update's commit asks to be as it was when the update began (``_on_fresh_tables``).
_NOT_GUARDED = "-"


def _on_fresh_tables(
    lake: Lake, action: Callable[[str | None], maintain.MartUpdate]
) -> maintain.MartUpdate:
    """``action(erasures)``, done again on freshly loaded tables when its commit lost a race
    to another writer of the marts (``process`` and ``report refresh`` each bring them up
    to date, ``up``'s processor too): the update starts over from the snapshots the marts
    record, so the second finds the first's work done. Inside an erasure's transaction the
    erasure retries itself.

    ``erasures``: ``ops.erasures``' metadata location before the tables were read, which
    the commit requires unchanged (:meth:`IcebergMarts.replace`). An erasure committed
    meanwhile took users' rows out of the curated tables this update read them from: a
    first build, which the erasure could not update, committed them into the marts after
    it (``forget`` said they were gone). It is done again on the erased tables instead."""
    from advertisex.errors import CommitConflictError
    from advertisex.util.retry import retrying

    if lake.catalog.in_group:
        return action(_NOT_GUARDED)

    def attempt() -> maintain.MartUpdate:
        erasures = lake.catalog.location(ERASURES_TABLE)
        lake.refresh()  # read after it: an erasure before is in the tables read
        return action(erasures)

    return retrying(attempt, retry_on=(CommitConflictError,), what="marts update")


def marts_built(lake: Lake) -> bool:
    """Whether the marts were ever computed here."""
    return lake.table(STATE_TABLE).current_snapshot() is not None


def catch_up_marts(lake: Lake, settings: Settings) -> maintain.MartUpdate:
    """Bring the marts up to date now, whatever ``correlation.update_marts`` says (an
    erasure must leave them consistent)."""
    return maintain.update(IcebergCurated(lake), IcebergMarts(lake), rules_for(lake, settings))


def positions(lake: Lake) -> dict[str, frozenset[int]]:
    """The curated snapshots the marts will next read from: maintenance keeps them."""
    if not marts_built(lake):
        return {}
    state = IcebergMarts(lake).state()
    return {
        table: frozenset({int(position)})
        for table in maintain.NEW_COLUMNS
        if (position := state.get(f"position:{table}"))
    }


def _overwrite(table: Any, data: pa.Table, where: Any = None) -> None:
    """pyiceberg's overwrite, in a transaction that works out the table's metadata once
    (``lake.transaction``: pyiceberg's own deep-copies every snapshot kept at each look)."""
    from advertisex.lake.transaction import transaction

    with transaction(table) as tx:
        if where is None:
            tx.overwrite(data)
        else:
            tx.overwrite(data, overwrite_filter=where)


def erase_from_marts(
    lake: Lake, rules: maintain.MatchingRules, removed: dict[str, pa.Table]
) -> maintain.MartUpdate:
    """Recompute the marts' slices that ``removed`` curated rows touched, reading the
    curated tables as if those rows were gone (an erasure computes this before it swaps
    the curated files, then commits both in one transaction: open the mart tables and
    get ``rules`` before it starts)."""
    curated = WithoutRows(IcebergCurated(lake), removed)
    return maintain.update(curated, IcebergMarts(lake), rules, None, removed)


class WithoutRows:
    """Curated tables read without some rows (matched by their dedupe key)."""

    def __init__(self, inner: IcebergCurated, removed: dict[str, pa.Table]) -> None:
        from advertisex.kernels.dedupe import key_column

        self.inner = inner
        self.keys = {
            name: key_column(name, rows).unique()
            for name, rows in removed.items()
            if name in maintain.NEW_COLUMNS and rows.num_rows
        }

    def positions(self) -> dict[str, int | None]:
        return self.inner.positions()

    def added(
        self, table: str, since: int | None, until: int | None, columns: tuple[str, ...]
    ) -> pa.Table | None:
        return self.inner.added(table, since, until, columns)  # planning only: rows may stay

    def added_parts(
        self, table: str, since: int | None, until: int | None, columns: tuple[str, ...]
    ) -> list[Callable[[], pa.Table | None]] | None:
        return self.inner.added_parts(table, since, until, columns)

    def chunks(self, table: str, where: Slice, columns: tuple[str, ...]) -> Chunks:
        from advertisex.kernels.dedupe import KEY_COLUMNS

        if table not in self.keys:
            return self.inner.chunks(table, where, columns)
        # The rows are told apart by their dedupe key, read with them where not asked for.
        keyed = (*columns, *(c for c in KEY_COLUMNS[table] if c not in columns))
        return self.inner.chunks(table, where, keyed).filtered(
            functools.partial(self._without, table, columns)
        )

    def spill_dir(self) -> Path | None:
        return self.inner.spill_dir()

    def first_day(self, table: str) -> date | None:
        return self.inner.first_day(table)  # an erased user's days among them: fewer kept

    def kept_from(self, table: str) -> date | None:
        return self.inner.kept_from(table)

    def _without(self, table: str, columns: tuple[str, ...], rows: pa.Table) -> pa.Table:
        from advertisex.kernels.dedupe import key_column

        keys = self.keys[table]
        if rows.num_rows:
            gone = pc.fill_null(pc.is_in(key_column(table, rows), value_set=keys), False)
            rows = rows.filter(pc.invert(gone))
        return rows.select(list(columns))


def rules_for(lake: Lake, settings: Settings) -> maintain.MatchingRules:
    """Windows from the settings; per-campaign ones from ``dims.campaigns`` (current versions)
    and the configured campaigns file, the file winning."""
    from advertisex.kernels.windows import OVERRIDE_COLUMNS, Windows

    c = settings.correlation
    windows = Windows.from_seconds(
        click=c.click_window_seconds,
        impression_id=c.impression_id_horizon_seconds,
        click_through=c.click_through_window_seconds,
        view_through=c.view_through_window_seconds,
        auction=c.auction_window_seconds,
    )
    parts = []
    # Looked for, not created by the read (a new lake's first update: ≈ 17 ms of its start).
    if "dims.campaigns" in TABLES and lake.catalog.table_exists("dims.campaigns"):
        dims = lake.read("dims.campaigns")
        if "valid_to" in dims.column_names:
            dims = dims.filter(pc.is_null(dims.column("valid_to")))
        parts.append(dims)
    if c.campaigns_file is not None:
        from pyarrow import csv

        parts.append(csv.read_csv(c.campaigns_file))
    wanted = ["campaign_id", *OVERRIDE_COLUMNS]
    tables = [
        p.select([n for n in wanted if n in p.column_names]).cast(
            pa.schema(
                [
                    (n, pa.string() if n == "campaign_id" else pa.float64())
                    for n in wanted
                    if n in p.column_names
                ]
            )
        )
        for p in parts
        if p.num_rows and "campaign_id" in p.column_names
    ]
    if not tables:
        return maintain.MatchingRules(windows)
    merged = pa.concat_tables(tables, promote_options="permissive")
    # Last occurrence of a campaign wins (the file comes after the dimension table).
    keep = pa.table(
        {"campaign_id": merged.column("campaign_id"), "i": pa.array(range(merged.num_rows))}
    )
    last = keep.group_by("campaign_id").aggregate([("i", "max")]).column("i_max")
    return maintain.MatchingRules(windows, merged.take(last))


class IcebergCurated:
    """The curated tables of ``lake``; ``stepped``: snapshots whose removals the reader
    knows (a replay's, :class:`Replayed`), stepped over as upkeep is."""

    def __init__(self, lake: Lake, stepped: Iterable[int] = ()) -> None:
        self.lake = lake
        self.stepped = frozenset(stepped)

    def positions(self) -> dict[str, int | None]:
        positions = {}
        for name in maintain.NEW_COLUMNS:
            snapshot = self.lake.table(name).current_snapshot()
            positions[name] = snapshot.snapshot_id if snapshot else None
        return positions

    def added(
        self, table: str, since: int | None, until: int | None, columns: tuple[str, ...]
    ) -> pa.Table | None:
        parts = self.added_parts(table, since, until, columns)
        if parts is None:
            return None
        tables = []
        for part in parts:
            rows = part()
            if rows is None:
                return None
            tables.append(rows)
        if len(tables) == 1:
            return tables[0]
        return (
            pa.concat_tables(tables) if tables else TABLES[table].projected(columns).empty_table()
        )

    def added_parts(
        self, table: str, since: int | None, until: int | None, columns: tuple[str, ...]
    ) -> list[Callable[[], pa.Table | None]] | None:
        if until is None or since == until:
            return []
        iceberg = self.lake.table(table)
        if since is None:
            paths = _files(iceberg, until)
        else:
            appended = appended_since(iceberg, since, until, _STEP_OVER, self.stepped)
            paths = None if appended is None else {f.file_path for f in appended}
        if paths is None:
            return None
        kept = self.lake.written(table, sorted(paths), columns)
        if kept is not None:  # written by this process's batch: not decoded again
            return [lambda: kept]
        schema = TABLES[table].projected(columns)
        return [functools.partial(self._file_rows, path, schema) for path in sorted(paths)]

    def _file_rows(self, path: str, schema: pa.Schema) -> pa.Table | None:
        import pyarrow.parquet as pq

        from advertisex.util.storage import resolve  # local folder or object store

        filesystem, located = resolve(path, self.lake.settings.scale)
        try:
            rows = pq.read_table(located, columns=schema.names, filesystem=filesystem)
        except FileNotFoundError:  # appended, compacted, and deleted since: start over
            return None
        return rows.cast(schema)

    def chunks(self, table: str, where: Slice, columns: tuple[str, ...]) -> Chunks:
        empty = TABLES[table].projected(columns).empty_table()
        if where.is_empty:
            return Chunks(0, lambda: empty, lambda: iter(()))
        kept = self._kept_whole(table, columns) if where.is_everything else None
        if kept is not None:
            rows = _shaped(kept, table, where, columns)
            return Chunks(rows.num_rows, lambda: rows, lambda: iter([rows]))
        planned, coarse = _planned(self.lake, table, where, columns, timed=True)
        if not planned.rows:
            return Chunks(0, lambda: empty, lambda: iter(()))
        return Chunks(
            planned.rows,
            lambda: _shaped(planned.table(), table, where, columns, coarse),
            lambda: (
                _shaped(pa.Table.from_batches([batch]), table, where, columns, coarse)
                for batch in planned.batches()
            ),
        )

    def _kept_whole(self, table: str, columns: tuple[str, ...]) -> pa.Table | None:
        """Every row of ``table`` as this process kept them when it wrote them
        (``Lake.keep_written``), when every file the table holds is one its own appends
        added (a new lake's first batch: its marts' first build); else None. Planned, the
        read of the kept rows cost a read of each table's manifests on the update's
        critical path (≈ 10 ms of CPU for the 2 M-event benchmark's four tables)."""
        files = all_appended_here(self.lake.table(table))
        if files is None:
            return None
        return self.lake.written(table, [f.file_path for f in files], columns)

    def spill_dir(self) -> Path | None:
        return self.lake.settings.spill_dir

    def first_day(self, table: str) -> date | None:
        return _first_day(self.lake.table(table))

    def kept_from(self, table: str) -> date | None:
        from advertisex.config import retention_days
        from advertisex.lake.retention import cutoff

        days = retention_days(self.lake.settings, table)
        return None if days is None else cutoff(days, utcnow())


# A slice of more time ranges than this is read by the partitions of its days, planned
# once over their span, and its rows picked in Arrow (Lake.read_on_days): pyiceberg weighs
# every clause of a filter against every data file, in the plan and again as it reads each.
FEW_RANGES = 4


def _by_days(table: str, where: Slice) -> bool:
    """Whether ``where``'s rows of ``table`` are read (and replaced) by the files of its
    days' partitions: a slice of many time ranges, or of some users (an ``In`` filter of
    hundreds of users cost pyiceberg's overwrite a conversion of each, in every file it
    read), on the column the table is partitioned by day on."""
    many = len(where.ranges) > FEW_RANGES or where.users is not None
    return many and where.column == TABLES[table].partition_by_day


def _micros(where: Slice) -> list[tuple[int, int]]:
    """``where``'s time ranges in µs since the epoch (a day from its midnight, UTC)."""
    from advertisex.util.timeutil import to_micros

    def at(bound: Bound) -> datetime:
        if isinstance(bound, datetime):
            return bound if bound.tzinfo else bound.replace(tzinfo=UTC)
        return datetime.combine(bound, time(), UTC)

    merged = merge_ranges((at(lo), at(hi)) for lo, hi in where.ranges)  # ends sorted too
    return [(to_micros(at(lo)), to_micros(at(hi))) for lo, hi in merged]


def _planned(
    lake: Lake, table: str, where: Slice, columns: tuple[str, ...], timed: bool = False
) -> tuple[PlannedRead, bool]:
    """The read of ``where``'s rows of ``table``, and whether it holds rows outside it (read
    by its days' partitions: ``where``'s mask picks its rows). ``timed``: the table's day
    partition column is a timestamp (the curated tables' event time), so a slice of it
    picks its files by their bounds from the files planned once (``Lake.read_within``)."""
    if _by_days(table, where):
        return lake.read_on_days(table, where.days(), columns, _micros(where)), True
    if timed and not where.is_everything and where.column == TABLES[table].partition_by_day:
        return lake.read_within(table, _micros(where), columns), False
    return lake.read_planned(table, expression(where, with_users=False), columns), False


def _shaped(
    rows: pa.Table, table: str, where: Slice, columns: tuple[str, ...], coarse: bool = False
) -> pa.Table:
    """Rows read through a scan of ``where`` as :meth:`Curated.chunks` gives them: the
    columns asked for, in the table's types, of ``where``'s users only (a scan filters on
    time), and of its times only when the read was ``coarse`` (:func:`_planned`)."""
    schema = TABLES[table].projected(columns)
    rows = rows.select(list(columns)).cast(schema)
    return rows.filter(where.mask(rows)) if coarse or where.users is not None else rows


class IcebergMarts:
    """The marts as Iceberg tables of ``lake``.

    ``beside``: a thread to work on while the marts are computed (:func:`update_marts`).
    The marts' tables are opened there at once — a new lake's created — and the rows a
    rebuild offers (:meth:`offer`) written there as soon as they are known. What failed
    there fails again, or is raised, in :meth:`replace`."""

    def __init__(
        self, lake: Lake, beside: Executor | None = None, erasures: str | None = _NOT_GUARDED
    ) -> None:
        self.lake = lake
        self._beside = beside
        # ``ops.erasures``' metadata location when the curated rows were first read, which
        # the commit requires unchanged (:func:`_on_fresh_tables`); _NOT_GUARDED: none.
        self._erasures = erasures
        tables = [*maintain.MART_TABLES, STATE_TABLE]
        self._opened = beside.submit(_open, lake, tables) if beside else None
        # table → (the rows offered, their data files being written: None for a table
        # that has rows already, which replace overwrites)
        self._offered: dict[str, tuple[pa.Table, Future[list[WrittenFile] | None]]] = {}

    def offer(self, table: str, rows: pa.Table) -> None:
        """``rows`` are to be all of ``table`` (a rebuild's): written beside, when there is
        a thread for it and the table has no rows yet, for :meth:`replace` to commit."""
        if self._beside is not None:
            self._offered[table] = (rows, self._beside.submit(self._write_offered, table, rows))

    def _write_offered(self, table: str, rows: pa.Table) -> list[WrittenFile] | None:
        iceberg = self.lake.table(table)
        if iceberg.current_snapshot() is not None or not rows.num_rows:
            return None
        written = self.lake.write_files({table: rows}, f"marts-{utcnow():%Y%m%dT%H%M%S}")
        files = written.get(table, [])
        _plan_statistics(iceberg, files)
        return files

    def discard_offered(self) -> None:
        """Remove the files written for offered rows that no commit took (the update failed
        before its commit): nobody's."""
        offered, self._offered = self._offered, {}
        for name, (_, files) in offered.items():
            with contextlib.suppress(Exception):  # nothing written: nothing to remove
                if written := files.result():
                    self.lake.remove_files({name: [f.url for f in written]})

    def first_day(self) -> date | None:
        days = [
            day
            for name in maintain.MART_TABLES
            if TABLES[name].partition_by_day is not None
            and self.lake.catalog.table_exists(name)
            and (day := _first_day(self.lake.table(name))) is not None
        ]
        return min(days, default=None)

    def state(self) -> dict[str, str]:
        if not self.lake.catalog.table_exists(STATE_TABLE):
            return {}  # a new lake's: made with the marts' first commit
        rows = self.lake.read(STATE_TABLE)
        return dict(
            zip(rows.column("key").to_pylist(), rows.column("value").to_pylist(), strict=True)
        )

    def read(self, table: str, where: Slice) -> pa.Table:
        fields = tuple(TABLES[table].schema.names)
        planned, coarse = _planned(self.lake, table, where, fields)
        if not planned.rows:
            return TABLES[table].schema.empty_table()
        return _shaped(planned.table(), table, where, fields, coarse)

    def replace(self, changes: Mapping[str, tuple[Slice, pa.Table]], state: dict[str, str]) -> None:
        now = utcnow()
        state_rows = pa.table(
            {"key": list(state), "value": list(state.values()), "updated_at": [now] * len(state)},
            schema=STATE,
        )
        if self._opened is not None:
            wait([self._opened])
        tables = {name: self.lake.table(name) for name in [*changes, STATE_TABLE]}
        joining = self.lake.catalog.in_group  # an erasure's transaction: commit in it
        full = storage_errors(self.lake.settings.warehouse_uri)
        replaced = {**changes, STATE_TABLE: (Slice.everything(), state_rows)}
        # A mart never written to (a new lake's first build) has nothing to replace: its
        # rows are written as a batch's are and appended, with no delete to plan.
        new = {
            name: rows
            for name, (_, rows) in replaced.items()
            if tables[name].current_snapshot() is None and rows.num_rows
        }
        prefix = f"marts-{now:%Y%m%dT%H%M%S}"
        written, beside = self._write(new, prefix)
        # The marts whose files are still being written beside go last, in the order they
        # were offered (a first build's hourly rollup, ≈ 90 k rows, the longest): the other
        # marts are added to the commit meanwhile, not after them on one busy core.
        offered = list(self._offered)
        order = sorted(replaced, key=lambda n: offered.index(n) + 1 if n in beside else 0)
        catalog = self.lake.catalog
        guard = {} if self._erasures == _NOT_GUARDED else {ERASURES_TABLE: self._erasures}
        group = catalog.joined() if joining else catalog.atomic([], unchanged=guard)
        try:
            with full, group, warnings.catch_warnings():
                # An empty slice is normal (nothing was there yet); pyiceberg warns about it.
                warnings.filterwarnings("ignore", "Delete operation did not match any records")
                for name in order:
                    where, rows = replaced[name]
                    data = rows.select(TABLES[name].schema.names).cast(TABLES[name].schema)
                    if name in beside:
                        written[name] = self._take_offered(name, rows, prefix)
                    if name in new:
                        urls = [f.url for f in written.get(name, [])]
                        add_files(tables[name], urls, {}, self.lake.take_footers(urls))
                    elif where.is_everything:
                        _overwrite(tables[name], data)
                    elif _by_days(name, where):
                        self._swap_days(tables[name], name, where, data, prefix, written)
                    elif not where.is_empty or data.num_rows:
                        _overwrite(tables[name], data, expression(where))
        except BaseException:
            self.lake.remove_files({n: [f.url for f in w] for n, w in written.items()})
            if not joining:  # tables opened here hold the commits staged, never published
                self.lake.refresh()
            raise
        if not joining:
            self.lake.refresh()

    def _swap_days(
        self,
        table: Any,
        name: str,
        where: Slice,
        data: pa.Table,
        prefix: str,
        written: dict[str, list[WrittenFile]],
    ) -> None:
        """Replace ``where``'s rows of ``name`` by ``data`` as pyiceberg's overwrite would
        (copy-on-write), without its filter: the files of the days ``where`` reaches that
        its times meet are read (``Lake.read_on_days``), their rows outside it kept, and
        rewritten with ``data`` in one snapshot; the other files stay. The files written
        are added to ``written`` (removed if the update fails)."""
        fields = tuple(TABLES[name].schema.names)
        planned = self.lake.read_on_days(name, where.days(), fields, _micros(where))
        if not planned.whole:  # files read in part, or rows deleted by position in them
            _overwrite(table, data, expression(where))
            return
        schema = TABLES[name].schema
        rows = planned.table().select(list(fields)).cast(schema) if planned.rows else data[:0]
        kept = rows.filter(pc.invert(where.mask(rows)))
        files = self.lake.write_files({name: pa.concat_tables([kept, data])}, prefix)
        urls = [f.url for f in files.get(name, [])]
        written.setdefault(name, []).extend(files.get(name, []))
        if urls or planned.files:
            commit_swap(table, planned.files, urls, None, footers=self.lake.take_footers(urls))

    def _write(
        self, new: dict[str, pa.Table], prefix: str
    ) -> tuple[dict[str, list[WrittenFile]], set[str]]:
        """The data files of the ``new`` marts' rows not offered as they are
        (:meth:`offer`), written now; and the names of those offered, whose files are
        written beside (:meth:`_take_offered`)."""
        written: dict[str, list[WrittenFile]] = {}
        beside: set[str] = set()
        unwritten = dict(new)
        try:
            for name, rows in new.items():
                offered, files = self._offered.get(name, (None, None))
                if files is None:
                    continue
                if offered is rows:
                    beside.add(name)  # left offered until taken: discard_offered removes them
                    del unwritten[name]
                    continue
                del self._offered[name]
                early = files.result()
                if early is not None:  # rows other than those offered: not these files
                    self.lake.remove_files({name: [f.url for f in early]})
            written.update(self.lake.write_files(unwritten, prefix))
        except BaseException:
            self.lake.remove_files({n: [f.url for f in w] for n, w in written.items()})
            raise
        return written, beside

    def _take_offered(self, name: str, rows: pa.Table, prefix: str) -> list[WrittenFile]:
        """The files written beside for ``rows``, offered as ``name``'s, once written (or
        written now, where the thread beside left them to the commit)."""
        _, files = self._offered.pop(name)
        early = files.result()
        if early is not None:
            return early
        return self.lake.write_files({name: rows}, prefix).get(name, [])


def _plan_statistics(table: Any, files: Sequence[WrittenFile]) -> None:
    """Work out, beside, the statistics plan the commit of ``files`` to ``table`` (a new
    one: ``add_files`` names its columns first) will need (``lake.datafiles``
    caches it by table, schema and properties): on a new lake each mart's was worked out
    in the marts' commit, on the update's serial tail."""
    from pyiceberg.table import TableProperties

    from advertisex.lake.datafiles import data_file

    metadata = table.metadata
    if metadata.name_mapping() is None:  # as add_files sets it in the commit
        mapping = metadata.schema().name_mapping.model_dump_json()
        properties = {**metadata.properties, TableProperties.DEFAULT_NAME_MAPPING: mapping}
        metadata = metadata.model_copy(update={"properties": properties})
    for file in files[:1]:  # one plan for every file of the table's schema
        if file.footer is not None:
            # Only a head start: what fails here fails again in the commit, and is told there.
            with contextlib.suppress(Exception):
                data_file(table, metadata, file.url, file.footer)


def _first_day(table: Any) -> date | None:
    """The earliest day partition of ``table`` holding a data file (None: none)."""
    days = [
        f.partition[0]
        for f in live_files(table)
        if f.partition is not None and f.partition[0] is not None
    ]
    return EPOCH + timedelta(days=min(days)) if days else None


def _open(lake: Lake, names: Sequence[str]) -> None:
    for name in names:
        lake.table(name)


def expression(where: Slice, with_users: bool = True) -> Any:
    """The pyiceberg row filter selecting the rows of ``where``."""
    from pyiceberg.expressions import AlwaysFalse, AlwaysTrue, And, In

    from advertisex.lake.tables import ranges_filter

    if where.is_everything:
        return AlwaysTrue()
    if where.is_empty:
        return AlwaysFalse()
    assert where.column is not None  # (only a slice of everything has none)
    combined = ranges_filter(where.column, where.ranges)
    if with_users and where.users is not None:
        combined = And(combined, In("user_id", sorted(where.users)))  # type: ignore[call-arg,misc]
    return combined


def _files(table: Any, snapshot_id: int) -> set[str] | None:
    """Data files of a snapshot; None when any carries delete files (rows were rewritten)."""
    files = set()
    for task in table.scan(snapshot_id=snapshot_id).plan_files():
        if task.delete_files:
            return None
        files.add(task.file.file_path)
    return files
