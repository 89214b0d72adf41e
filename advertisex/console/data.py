"""What the console shows, as plain data: the same dicts feed the pages and ``/api/v1``.

Every number comes from the code the CLI prints it with — ``report …`` through the
platform facade, ``status`` through the monitor's gatherer, ``quarantine …`` and
``alerts`` through the same readers — so a page, its API twin and ``advertisex … --format
json`` agree for the same inputs. Calls block (DuckDB, pyiceberg); the web layer runs
them in worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from advertisex.config import Settings
from advertisex.console.platform import Platform
from advertisex.console.query import (
    IDLE_WORKER_SECONDS,
    QueryResult,
    QueryWorkers,
    run_isolated,
)
from advertisex.console.slots import QuerySlots
from advertisex.errors import AdvertiseXError
from advertisex.util.timeutil import utcnow

BUCKET = timedelta(minutes=5)
ALERT_HISTORY_ROWS = 500


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist(maps_as_pydicts="lossy")


class Reader:
    """The console's read side over one platform, opened on first use."""

    def __init__(self, open_platform: Callable[[], Platform], settings: Settings) -> None:
        self.settings = settings
        self._open = open_platform
        self._platform: Platform | None = None
        self._lock = threading.Lock()
        self._gatherer: Any = None
        self._store: Any = None
        self._gather_lock = threading.Lock()
        # Queries share one memory budget: forty at once (the web layer's threads) were forty
        # budgets, and as many times every core; each process of ``serve --workers N`` had
        # its own query_concurrency of them. Their idle workers keep their slots, so the
        # budget bounds them too: each process kept query_concurrency of them outside it.
        self.query_workers = QueryWorkers()
        self.query_slots = QuerySlots(
            settings.data_dir / "console",
            settings.console.query_concurrency,
            keep_seconds=IDLE_WORKER_SECONDS,
            on_release=self.query_workers.stop,
        )

    @property
    def platform(self) -> Platform:
        with self._lock:
            if self._platform is None:
                self._platform = self._open()
            return self._platform

    def damage(self, error: BaseException) -> AdvertiseXError | None:
        """``error`` told as the lake's lost or damaged files behind it (``lake.damage``)."""
        from advertisex.lake.damage import explained, may_be_damage

        if not may_be_damage(error):
            return None
        try:
            return explained(self.platform.lake, error)
        except Exception:  # while another error is answered: that one is said
            return None

    def fresh(self) -> Platform:
        """The platform, its tables reloaded: other processes commit all the time."""
        platform = self.platform
        platform.lake.refresh()
        return platform

    # ------------------------------------------------------------------ overview
    def status(self, hours: int = 6) -> dict[str, Any]:
        """``advertisex status --format json`` plus events per minute per source for the
        last ``hours`` (5-minute buckets of commit time, from ``ops.batches``)."""
        from advertisex.monitor.state import StateStore
        from advertisex.monitor.status import alert_rows, source_rows

        platform = self.fresh()
        with self._gather_lock:  # the gatherer follows the landing zone; not thread-safe
            if self._gatherer is None:
                from advertisex.monitor.gather import Gatherer

                # The monitor's state store: final hours the monitor (or status) read
                # already are not read again, and the backlog counts what status counts.
                self._store = StateStore(self.settings.data_dir / "monitor" / "state.db")
                self._gatherer = Gatherer(self.settings, platform.lake, store=self._store)
            obs = self._gatherer.observe(hourly=False)
            firing = alert_rows(list(self._store.load("alerts").values()), firing_only=True)
        return {
            "at": obs.now.isoformat(),
            "sources": source_rows(obs),
            "firing": firing,
            "events_per_minute": _per_minute(obs.batches, obs.sources, obs.now, hours),
        }

    # ------------------------------------------------------------------ reports
    def report(self, name: str, **options: Any) -> Any:
        """A named report's rows (``users``: its sections), as ``report NAME --format json``."""
        return _report(self.fresh(), name, **options)

    def default_range(self) -> tuple[date, date]:
        """The 30 days up to the last day the marts have (today while they are empty)."""
        from advertisex.util import engine

        files = self.fresh().lake.data_files("marts.campaign_daily")
        last = None
        if files:  # the Parquet statistics answer this without reading the rows
            last = (
                engine.connection()
                .sql("SELECT max(day) FROM read_parquet($files)", params={"files": files})
                .fetchall()[0][0]
            )
        end = last or utcnow().date()
        return end - timedelta(days=29), end

    def campaigns(self, start: date, end: date, model: str) -> dict[str, Any]:
        """The campaigns page: ``report campaigns``, ``funnel`` and ``bids`` for the range."""
        platform = self.fresh()
        options = {"start": start, "end": end, "model": model}
        return {
            "campaigns": _report(platform, "campaigns", **options),
            "funnel": _report(platform, "funnel", **options),
            "bids": _report(platform, "bids", start=start, end=end),
        }

    def campaign(self, campaign_id: str, start: date, end: date, model: str) -> dict[str, Any]:
        """One campaign: its hours (``report hourly``), days, funnel and bid landscape."""
        platform = self.fresh()
        options = {"start": start, "end": end, "model": model, "campaign": campaign_id}
        return {
            "hourly": _report(platform, "hourly", **options),
            "campaigns": _report(platform, "campaigns", **options),
            "funnel": _report(platform, "funnel", **options),
            "bids": _report(platform, "bids", start=start, end=end, campaign=campaign_id),
        }

    # ------------------------------------------------------------------ quarantine
    def quarantine(self, selection: dict[str, Any]) -> dict[str, Any]:
        platform = self.fresh()
        return {
            "summary": rows(platform.quarantine_summary(**selection)),
            "timeline": rows(platform.quarantine_timeline(**selection)),
        }

    def quarantine_records(self, selection: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        return rows(self.fresh().quarantine_records(limit=limit, **selection))

    def replay_preview(self, selection: dict[str, Any]) -> dict[str, int]:
        return self.fresh().replay_preview(**selection)

    def replay(self, selection: dict[str, Any]) -> dict[str, Any]:
        """Replay, and what it did: the same fields as ``quarantine replay --format json``."""
        return self.fresh().replay_quarantine(**selection).summary()  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ alerts
    def alerts(self, since: datetime | None = None) -> dict[str, Any]:
        """Firing now (the monitor's state) and the newest history rows of ``ops.alerts``."""
        from advertisex.lake.query import QueryEngine
        from advertisex.monitor.state import StateStore
        from advertisex.monitor.status import alert_rows

        store = StateStore(self.settings.data_dir / "monitor" / "state.db")
        try:
            firing = alert_rows(list(store.load("alerts").values()), firing_only=True)
        finally:
            store.close()
        platform = self.fresh()
        history = QueryEngine(platform.lake, ("ops.alerts",)).query(
            'SELECT "at", alertname, state, severity, source, labels, value, threshold, summary '
            'FROM ops.alerts WHERE "at" >= $1 ORDER BY "at" DESC, alertname LIMIT $2',
            [since or datetime(1970, 1, 1, tzinfo=UTC), ALERT_HISTORY_ROWS],
        )
        return {"firing": firing, "history": rows(history)}

    # ------------------------------------------------------------------ SQL
    def query(self, sql: str, max_rows: int | None = None) -> QueryResult:
        config = self.settings.console
        cap = min(max_rows or config.query_max_rows, config.query_max_rows)
        with self.query_slots.held(wait=1.0) as slot:
            return run_isolated(
                self.platform.lake.settings,
                sql,
                max_rows=cap,
                timeout=config.query_timeout_seconds,
                memory_bytes=config.query_share_bytes,
                max_bytes=config.query_max_bytes,
                pool=self.query_workers.pool(slot),
            )

    # ------------------------------------------------------------------ lake
    def lake(self) -> dict[str, Any]:
        """Per table: rows, data files, bytes, snapshots, last commit; and per table (and
        the landing zone) the last maintenance run from ``ops.maintenance``."""
        from pyiceberg.exceptions import NoSuchTableError

        from advertisex.lake.upkeep import last_runs
        from advertisex.model.schemas import TABLES

        lake = self.fresh().lake
        maintained = {row["table"]: row for row in rows(last_runs(lake))}
        tables = []
        for name in TABLES:
            row: dict[str, Any] = {"table": name, "exists": False}
            try:
                row.update(_table_health(lake.catalog.load_table(name)))
            except NoSuchTableError:
                pass
            run = maintained.get(name)
            row["last_maintenance"] = run["finished_at"] if run else None
            row["maintenance_error"] = run["error"] if run else None
            tables.append(row)
        return {"tables": tables, "maintenance": list(maintained.values())}


def _report(platform: Platform, name: str, **options: Any) -> Any:
    result = platform.report(name, **options)
    if isinstance(result, dict):
        return {section: rows(table) for section, table in result.items()}
    return rows(result)


def _table_health(table: Any) -> dict[str, Any]:
    snapshots = list(table.metadata.snapshots)
    current = table.current_snapshot()
    summary = current.summary if current is not None else None

    def total(key: str) -> int:
        return int(summary.get(key, 0) or 0) if summary is not None else 0

    return {
        "exists": True,
        "rows": total("total-records"),
        "data_files": total("total-data-files"),
        "bytes": total("total-files-size"),
        "delete_files": total("total-delete-files"),
        "snapshots": len(snapshots),
        "last_commit": _ms(current.timestamp_ms) if current is not None else None,
    }


def _ms(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="seconds")


def _per_minute(
    batches: pa.Table, sources: tuple[str, ...], now: datetime, hours: int
) -> dict[str, Any]:
    """Records in per minute, per source and 5-minute bucket, zeros where nothing came."""
    first = (now - timedelta(hours=hours)).replace(second=0, microsecond=0)
    first -= timedelta(minutes=first.minute % 5)
    buckets = []
    at = first
    while at <= now:
        buckets.append(at)
        at += BUCKET
    index = {b: i for i, b in enumerate(buckets)}
    series = {source: [0.0] * len(buckets) for source in sources}
    for row in batches.select(["source", "bucket", "records_in"]).to_pylist():
        i = index.get(row["bucket"])
        if i is not None and row["source"] in series:
            series[row["source"]][i] += row["records_in"] / 5
    return {"buckets": [b.isoformat() for b in buckets], "sources": series}
