"""The monitor's I/O edge: read the landing zone, the catalog and the lake into Observations.

Pending segments come from the landing zone's own listing (a folder or object storage)
and committed ones from the lake's checkpoint rows: the monitor knows neither layout.

Everything is aggregated before the monitors see it (per source and 5-minute bucket,
per table or campaign and hour), so monitors stay cheap and pure. Aggregates of hours
that can no longer change — the hour is past ``settle_seconds`` and nothing landed in
it is still pending — are kept in memory (and in the state store, when given, so a
restarted monitor or a one-shot ``status`` does not read them again). Hours still
filling are followed incrementally by :class:`~advertisex.monitor.arrivals.LandingView`
(only new segments cost anything), ``ops.batches`` by
:class:`~advertisex.monitor.batches.BatchTotals` (each data file summed once). A replay,
which withdraws committed marks, raises the ledger's epoch: then everything is read
afresh. The curated tables' hourly aggregates are read once per complete hour; DuckDB
prunes the rest through the Parquet row-group statistics on ``ingest_time``: every
batch writes its own files, whose ingest times span only that batch.
"""

from __future__ import annotations

import dataclasses
import socket
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.config import Settings
from advertisex.lake.tables import Lake
from advertisex.landing.zone import open_landing
from advertisex.monitor import queries
from advertisex.monitor.arrivals import Key, LandingView
from advertisex.monitor.batches import BatchTotals
from advertisex.monitor.files import FileIndex
from advertisex.monitor.model import (
    CAMPAIGNS,
    DAMAGED,
    HOUR,
    MartsLag,
    Observations,
    ProcessorHealth,
    floor_hour,
)
from advertisex.monitor.state import StateStore
from advertisex.util.timeutil import Clock, utcnow

SOURCES = ("impressions", "clicks", "bids")


class Gatherer:
    """Builds :class:`Observations` from a platform's data; keeps final hours cached."""

    def __init__(
        self, settings: Settings, lake: Lake, clock: Clock = utcnow, store: StateStore | None = None
    ) -> None:
        self.settings = settings
        self.cfg = settings.monitor
        self.lake = lake
        self.landing = open_landing(settings)  # a folder, or object storage
        self.clock = clock
        self._arrivals: dict[Key, pa.Table] = {}  # final (source, hour)
        self._hourly: dict[tuple[str, datetime], pa.Table] = {}  # final (aggregate, hour)
        self._epoch: int | None = None  # of the ledger, when the final hours were read
        self.files = FileIndex(lake)
        self.view = LandingView(self.landing, lake)  # hours still filling
        self.batch_totals = BatchTotals(self.files)
        self.store = store  # where complete hours' aggregates outlive a restart

    def observe(self, hourly: bool = True) -> Observations:
        """What the monitors read, as of now. ``hourly=False`` leaves out the hourly
        aggregates of the curated tables (empty) and the marts' lag: landing and batches
        only, which is all ``status`` and the console's overview show."""
        now = self.clock()
        since = floor_hour(now) - timedelta(days=self.cfg.lookback_days)
        arrivals = self._arrivals_since(since, now)
        pending = pc.min(arrivals.column("oldest_pending_at")).as_py()
        final_until = min(
            floor_hour(now - timedelta(seconds=self.cfg.settle_seconds)), pending or now
        )
        aggregates = (
            self._hourly_since(since, now, final_until)
            if hourly
            else {name: schema.empty_table() for name, schema in queries.HOURLY.items()}
        )
        return Observations(
            now=now,
            arrivals=arrivals,
            batches=self._batches_since(since, now),
            tables=aggregates["tables"],
            campaigns=aggregates["campaigns"],
            links=aggregates["links"],
            fields=aggregates["fields"],
            dims=self._dims() if hourly else None,
            set_aside=queries.set_aside(
                self.files.paths("curated.quarantine"), since, self.settings.scale
            ),
            damaged=self._damaged() if hourly else DAMAGED.empty_table(),
            processor=follower_health(self.settings, now),
            marts=self._marts() if hourly else None,
            sources=SOURCES,
            settled_until=pending,
        )

    def _marts(self) -> MartsLag | None:
        """How far behind the marts are, where runs keep them current (a lake that leaves
        them to ``report refresh`` is not judged)."""
        if not self.settings.correlation.update_marts:
            return None
        return marts_lag(self.lake)

    def _damaged(self) -> pa.Table:
        """Each table's data files its storage lost or damaged (``lake.damage``): a look at
        every current file's size, from the file index's manifests (read once each)."""
        from advertisex.lake.damage import damage_error, damaged_among
        from advertisex.model.schemas import TABLES

        files = [(n, f.path, f.size) for n in TABLES for f in self.files.files(n)]
        damaged = damaged_among(files, self.settings.scale)
        rows = []
        for name in sorted({d.table for d in damaged}):
            mine = [d for d in damaged if d.table == name]
            first = f"{mine[0].url.removeprefix('file://')} ({mine[0].problem})"
            rows.append(
                {
                    "table": name,
                    "files": len(mine),
                    "first": first,
                    "way_back": damage_error(self.lake, mine).hint or "",
                }
            )
        return pa.Table.from_pylist(rows, schema=DAMAGED)

    # ------------------------------------------------------------ landing + catalog
    def _arrivals_since(self, since: datetime, now: datetime) -> pa.Table:
        epoch = self.lake.ledger_reads.epoch()
        if epoch != self._epoch:  # marks were withdrawn (a replay): read everything again
            self._arrivals.clear()
            self.view.clear()
            self._epoch = epoch
        keys = []
        hour = since
        while hour <= now:
            keys += [(source, hour) for source in SOURCES]
            hour += HOUR
        self._arrivals = {k: v for k, v in self._arrivals.items() if k[1] >= since}
        missing = [k for k in keys if k not in self._arrivals and not self.view.follows(k)]
        if missing and self.store is not None:
            self._arrivals.update(self.store.load_arrivals(missing, epoch))
        following = [k for k in keys if k not in self._arrivals]
        fresh = self.view.arrivals(following)
        settle = timedelta(seconds=self.cfg.settle_seconds)
        final = {}
        for (source, hour), table in fresh.items():
            if hour + HOUR + settle <= now and not pc.sum(table.column("pending")).as_py():
                final[(source, hour)] = table
                self.view.forget((source, hour))
        self._arrivals.update(final)
        if final and self.store is not None:
            self.store.save_arrivals(final, epoch, since)
        return pa.concat_tables(
            [self._arrivals[k] if k in self._arrivals else fresh[k] for k in keys]
        )

    def _batches_since(self, since: datetime, now: datetime) -> pa.Table:
        return self.batch_totals.since(since)

    # ------------------------------------------------------------ curated aggregates
    def _hourly_since(
        self, since: datetime, now: datetime, final_until: datetime
    ) -> dict[str, pa.Table]:
        """Aggregates of the complete hours since ``since``, each computed once.

        Only the hourly monitors read these, and they judge complete hours only; so an
        hour is aggregated once, at the first evaluation after it is complete, and the
        evaluations in between read nothing from the curated tables.
        """
        hours = []
        hour = since
        while hour + HOUR <= final_until:
            hours.append(hour)
            hour += HOUR
        missing = [h for h in hours if ("tables", h) not in self._hourly]
        if missing and self.store is not None:
            self._hourly.update(self.store.load_aggregates(missing, list(queries.HOURLY)))
            missing = [h for h in hours if ("tables", h) not in self._hourly]
        if missing:
            fresh = queries.hourly(
                self.lake, missing[0], self.settings, self.files, until=missing[-1] + HOUR
            )
            for name, table in fresh.items():
                hour_column = table.column("hour")
                for h in missing:
                    self._hourly[(name, h)] = table.filter(pc.equal(hour_column, h))
            if self.store is not None:
                done = {(n, h): self._hourly[(n, h)] for n in queries.HOURLY for h in missing}
                self.store.save_aggregates(done, since)
        self._hourly = {k: v for k, v in self._hourly.items() if k[1] >= since}
        return {
            name: pa.concat_tables([self._hourly[(name, h)] for h in hours])
            if hours
            else schema.empty_table()
            for name, schema in queries.HOURLY.items()
        }

    def _dims(self) -> pa.Table | None:
        """Current campaign budgets, or None while no ``dims.campaigns`` table exists."""
        from advertisex.model.schemas import TABLES

        if "dims.campaigns" not in TABLES:
            return None
        from pyiceberg.exceptions import NoSuchTableError

        try:
            table = self.lake.catalog.load_table("dims.campaigns")
        except NoSuchTableError:
            return None  # never loaded: the monitor does not create it
        if table.current_snapshot() is None:
            return None
        from pyiceberg.expressions import IsNull

        rows = self.lake.read(
            "dims.campaigns",
            IsNull("valid_to"),  # type: ignore[call-arg,misc]
            tuple(CAMPAIGNS.names),
        )
        return rows.cast(CAMPAIGNS)


def marts_lag(lake: Lake) -> MartsLag | None:
    """How far the marts are behind the curated tables, from the marts' state (the
    snapshot of each input they last folded in) and the inputs' snapshot history alone —
    no data file is opened; None while the marts were never built."""
    from advertisex.lake.history import first_append_after
    from advertisex.model.marts import INPUTS, STATE_TABLE

    if not lake.catalog.table_exists(STATE_TABLE):
        return None
    rows = lake.read(STATE_TABLE)
    if not rows.num_rows:
        return None
    state = dict(zip(rows.column("key").to_pylist(), rows.column("value").to_pylist(), strict=True))
    committed = []
    for table in INPUTS:
        position = state.get(f"position:{table}")
        at = first_append_after(lake.table(table), int(position) if position else None)
        if at is not None:
            committed.append(at)
    return MartsLag(
        datetime.fromtimestamp(min(committed) / 1000, UTC) if committed else None,
        pc.max(rows.column("updated_at")).as_py(),
    )


def follower_health(settings: Settings, now: datetime) -> ProcessorHealth | None:
    """The running follower's health as it wrote it (``util.health``), or None when
    none runs: none ever wrote one, it stopped, or its process is gone (killed). On this
    host, alive means holding the lake's processor lock: after a SIGKILL its pid may be
    another process's, the lock is let go. On another host the lock's holder cannot be
    known: it counts as alive while its file is fresh."""
    from advertisex.util.health import held_by, lock_holder, read_health

    data = read_health(settings.data_dir)
    if data is None or data.get("state") != "running":
        return None
    try:
        updated = datetime.fromisoformat(data["updated"])
        max_wait = float(data["max_wait_seconds"])
        pid, host = int(data["pid"]), str(data["host"])
        health = ProcessorHealth(
            pid=pid,
            host=host,
            updated=updated,
            max_wait_seconds=max_wait,
            failures=int(data["failures"]),
            failing_since=_instant(data.get("failing_since")),
            last_success=_instant(data.get("last_success")),
            error=data.get("error"),
            hint=data.get("hint"),
            started=_instant(data.get("started")),
        )
    except (KeyError, TypeError, ValueError):
        return None  # not a file a follower wrote
    if host != socket.gethostname():
        limit = settings.monitor.processor_stuck_seconds + max_wait
        fresh = (now - updated).total_seconds() <= limit
        return dataclasses.replace(health, pid_checked=False) if fresh else None
    return health if held_by(lock_holder(settings.data_dir), pid, host) else None


def _instant(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None
