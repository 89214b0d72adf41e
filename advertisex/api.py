"""The Python API: one object that the CLI (and any embedding program) drives.

>>> import advertisex
>>> ax = advertisex.open(data_dir="/tmp/adx")      # doctest: +SKIP
>>> ax.ingest(["drop/"]); ax.process()             # doctest: +SKIP
>>> ax.query("select count(*) n from curated.impressions").to_pylist()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advertisex.errors import ConfigError

if TYPE_CHECKING:  # the heavy layers load with the verb that needs them (CLI start-up)
    import pyarrow as pa

    from advertisex.config import Settings
    from advertisex.lake.tables import Lake
    from advertisex.landing.zone import IngestResult, LandingZone
    from advertisex.runners.embedded import EmbeddedRunner
    from advertisex.runners.hooks import CommitHook
    from advertisex.runners.runner import ProcessReport, Progress


class AdvertiseX:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def landing(self) -> LandingZone:
        from advertisex.landing.zone import open_landing

        self.create_data_dir()
        return open_landing(self.settings)  # <data_dir>/landing, or scale.landing on S3 …

    @cached_property
    def lake(self) -> Lake:
        from advertisex.lake.tables import Lake

        self.create_data_dir()
        lake = Lake(self.settings)

        def followed() -> dict[str, frozenset[int]]:  # commits thinning snapshots keep these
            from advertisex.marts.iceberg import positions

            return positions(lake)

        lake.followed = followed
        return lake

    @cached_property
    def commit_hooks(self) -> list[CommitHook]:
        """Who hears of every batch a runner commits: the monitor's processor metrics."""
        from advertisex.monitor.metrics import ProcessorMetrics

        return [ProcessorMetrics(self.settings.data_dir)]

    def lake_exists(self) -> bool:
        """Whether a lake was made here before: its data directory exists. A shared catalog
        (``lake.catalog_uri``) is made and kept elsewhere, so it counts as existing."""
        return bool(self.settings.lake.catalog_uri) or self.settings.data_dir.is_dir()

    def create_data_dir(self) -> bool:
        """Make the data directory if it is missing; True when this call made it."""
        from advertisex.util.storage import fsync_path, make_folders

        path = self.settings.data_dir
        if path.is_dir():
            return False
        try:
            make_folders(path.parent)
            path.mkdir()
            fsync_path(path.parent)  # else a power cut may take the lake with its name
        except FileExistsError:
            if path.is_dir():  # another process made it in between
                return False
            raise _cannot_create(path, "a file of that name is in the way") from None
        except OSError as error:
            raise _cannot_create(path, error.strerror or str(error)) from None
        return True

    @property
    def runner(self) -> EmbeddedRunner:
        from advertisex.runners.embedded import EmbeddedRunner

        return EmbeddedRunner(self.settings, self.lake, self.landing, self.commit_hooks)

    # ------------------------------------------------------------------ verbs
    def ingest(
        self, paths: Iterable[str], source: str | None = None, progress: Progress | None = None
    ) -> list[IngestResult]:
        """Copy files (folders, globs) into the landing zone; already-landed bytes are no-ops."""
        from advertisex.landing.zone import expand_paths

        passed_over: list[IngestResult] = []
        walked: dict[Path, Path] = {}  # a folder's files are checked again as they are read
        files = expand_paths(paths, passed_over, walked)
        done = (lambda n: progress("ingest", n, len(files))) if progress else None
        return self.landing.ingest_files(list(files), source, done, walked) + passed_over

    def process(self, progress: Progress | None = None) -> ProcessReport:
        """Process every pending landing segment into the curated tables."""
        return self.runner.process(progress)

    def replay(
        self, start: date | None = None, end: date | None = None, progress: Progress | None = None
    ) -> Any:
        """Rebuild the tables from the landing zone for batches that consumed segments
        landed between ``start`` and ``end`` (all of them when both are None)."""
        from advertisex.runners.replay import replay

        return replay(self.runner, start, end, progress)

    def click_url(self, to: str, campaign_id: str, **params: str) -> str:
        """A signed tracking link: clicks land through the collector, then go on to ``to``.

        >>> ax.click_url("https://shop.example/sale", "cmp-1", ad_creative_id="cr-9")  # doctest: +SKIP
        'http://127.0.0.1:8080/v1/c?campaign_id=cmp-1&ad_creative_id=cr-9&to=https%3A…&sig=…'
        """
        from advertisex.collector.tracking.links import click_url

        return click_url(self.settings, to, campaign_id, params)

    def query(self, sql: str) -> pa.Table:
        """One read-only SQL statement over the tables (DuckDB dialect); several are refused
        before any runs (``SeveralStatementsError``, code ``several_statements``):
        :meth:`query_each_row_parts` answers each."""
        from advertisex.lake.query import QueryEngine

        return QueryEngine(self.lake).query(sql)

    def query_rows(self, sql: str) -> tuple[list[str], list[dict[str, Any]]]:
        """:meth:`query` as (column names, row dicts), without loading Arrow (one statement)."""
        from advertisex.lake.query import QueryEngine

        return QueryEngine(self.lake).rows(sql)

    def query_row_parts(
        self, sql: str, rows_a_part: int = 10_000
    ) -> tuple[list[str], Iterator[list[dict[str, Any]]]]:
        """:meth:`query_rows` a part of ``rows_a_part`` rows at a time, as they are read."""
        from advertisex.lake.query import QueryEngine

        return QueryEngine(self.lake).row_parts(sql, rows_a_part)

    def query_each_row_parts(
        self, sql: str, rows_a_part: int = 10_000
    ) -> list[Callable[[], tuple[list[str], Iterator[list[dict[str, Any]]]]]]:
        """:meth:`query_row_parts` of each statement of ``sql``: one call a statement,
        which runs it; call them in order."""
        from advertisex.lake.query import QueryEngine

        return QueryEngine(self.lake).each_row_parts(sql, rows_a_part)

    def report_campaigns(
        self, start: date | None = None, end: date | None = None, **options: Any
    ) -> pa.Table:
        from advertisex.reports import campaigns

        return campaigns.campaign_days(self, start, end, **options)

    def report(self, name: str, options: Any = None, **fields: Any) -> Any:
        """A named report (``advertisex.reports.REPORTS``) with ``ReportOptions``, or with
        its fields as keywords: ``ax.report("funnel", start=date(2026, 11, 20), model="first")``."""
        from advertisex.reports.common import ReportOptions

        return _report_module(name).report(self, options or ReportOptions(**fields))

    def report_rows(
        self, name: str, options: Any = None, **fields: Any
    ) -> tuple[list[str], list[dict[str, Any]]] | None:
        """:meth:`report` as (column names, row dicts) straight from DuckDB, without
        loading Arrow; None for a report that is not one SQL question (``users``' sections,
        ``campaigns`` with invalid traffic): :meth:`report` answers those."""
        from advertisex.reports.common import ReportOptions, rows

        module = _report_module(name)
        options = options or ReportOptions(**fields)
        question = module.question(options) if hasattr(module, "question") else None
        if question is None:
            return None
        sql, tables = question
        return rows(self, sql, tables, options)

    # ------------------------------------------------------------------ quarantine
    # ``selection`` keywords: source, reason, since, until (see quarantine.selection.Selection).
    def quarantine_summary(self, **selection: Any) -> pa.Table:
        """Quarantined records per source and reason: counts, files, first and last landing."""
        from advertisex.quarantine.selection import Selection, summary

        return summary(self.lake, Selection(**selection))

    def quarantine_timeline(self, **selection: Any) -> pa.Table:
        """Quarantined records per hour of landing, source and reason."""
        from advertisex.quarantine.selection import Selection, timeline

        return timeline(self.lake, Selection(**selection))

    def quarantine_records(self, limit: int | None = None, **selection: Any) -> pa.Table:
        """The selected records with their reasons, landing file, position and raw text."""
        from advertisex.quarantine.selection import Selection, records

        return records(self.lake, Selection(**selection), limit=limit)

    def replay_preview(self, **selection: Any) -> dict[str, int]:
        """How many records a replay would take (``selected``, ``not_replayable``)."""
        from advertisex.quarantine.replay import preview
        from advertisex.quarantine.selection import Selection

        return preview(self.lake, Selection(**selection))

    def replay_quarantine(self, **selection: Any) -> Any:
        """Re-run the selected quarantined records; those that pass leave the quarantine."""
        from advertisex.quarantine.replay import replay
        from advertisex.quarantine.selection import Selection

        return replay(self.settings, self.lake, self.landing, Selection(**selection))

    def refresh_marts(
        self, rebuild: bool = False, kernels: Any = None, progress: Progress | None = None
    ) -> Any:
        """Bring the marts up to date with the curated tables (or recompute them);
        ``kernels`` says where their kernels run (default: here; see marts/spark.py)."""
        from advertisex.marts.iceberg import rebuild_marts, update_marts

        if rebuild:
            return rebuild_marts(self.lake, self.settings, kernels, progress)
        return update_marts(self.lake, self.settings, kernels, progress)

    def maintain(
        self,
        tables: list[str] | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
        trigger: str = "command",
    ) -> Any:
        """Compact, expire snapshots, remove unreferenced files and apply retention
        (``tables``: those only; default every table and the landing zone)."""
        import contextlib

        from advertisex.lake.upkeep import maintain
        from advertisex.marts.iceberg import positions
        from advertisex.runners.lock import maintenance_lock

        # One run at a time (a dry run changes nothing: it needs none).
        with contextlib.nullcontext() if dry_run else maintenance_lock(self.settings.data_dir):
            return maintain(
                self.lake,
                self.landing,
                tables,
                dry_run=dry_run,
                trigger=trigger,
                progress=progress,
                keep=positions(self.lake),
            )

    def forget(self, user_ids: list[str], progress: Progress | None = None) -> Any:
        """Erase every trace of these users: landing files, tables, marts, history."""
        from advertisex.runners.forget import forget

        return forget(self.lake, self.landing, user_ids, progress)

    def relocate(self) -> Any:
        """Make a moved or copied lake this data directory's own: every table recorded in
        another folder made to name its files here (``lake.relocate``), while no processor
        runs. A :class:`~advertisex.lake.relocate.Relocation` says what moved."""
        from advertisex.errors import UserInputError
        from advertisex.lake.relocate import relocate
        from advertisex.runners.lock import processor_lock

        settings = self.settings
        if settings.lake.catalog_uri or settings.lake.warehouse:
            raise UserInputError(
                "relocation is for the default layout (the catalog and the warehouse in the "
                "data directory); a configured catalog or warehouse keeps its own paths",
                hint="unset lake.catalog_uri and lake.warehouse to relocate this data directory",
            )
        with processor_lock(settings.data_dir):
            moved = relocate(
                settings.catalog_uri, settings.lake.catalog_name, settings.warehouse_uri
            )
        self.__dict__.pop("lake", None)  # opened before: it knew the lake as a copy or moved
        return moved

    def backup(self, to: Path) -> Any:
        """Copy the whole lake, as of one moment, to the new folder ``to`` while it runs
        (``lake.backup``); a :class:`~advertisex.lake.backup.BackupReport` says what."""
        from advertisex.lake.backup import backup

        return backup(self.settings, to)

    def data_location(self) -> Path:
        return self.settings.data_dir.resolve()


def _cannot_create(path: Path, reason: str) -> ConfigError:
    return ConfigError(
        f"cannot create the data directory {path.absolute()}: {reason}",
        hint="set data_dir in advertisex.toml or ADVERTISEX_DATA_DIR to a folder you can write",
    )


def _report_module(name: str) -> Any:
    """The module answering report ``name`` (``advertisex.reports.REPORTS``)."""
    import importlib

    from advertisex.errors import NotFoundError
    from advertisex.reports import REPORTS

    if name not in REPORTS:
        raise NotFoundError(f"no report named {name!r}", hint="reports: " + ", ".join(REPORTS))
    return importlib.import_module(REPORTS[name])
