"""``advertisex backup``: a copy of the whole lake as of one moment, taken while it runs.

A lake is its catalog database (each table's current metadata, and which landing files
were processed), the warehouse (tables' metadata, manifests and data files), the landing
zone (the source of truth, with its ingest index) and the monitors' state. Every file but
the databases is written once and never changed — Iceberg's files and the landing
segments are added and, later, deleted by upkeep and retention, never rewritten — so a
copy consistent at one moment needs the databases copied at that moment (SQLite's online
backup, which a running processor and collector do not notice) and then the files they
name, which are still there: a table's current files stay while its time travel reaches
them, a done segment while retention keeps it. What lands or commits after that moment is
copied or not; either way the copied databases do not name it — a segment not yet done
is pending in the backup, and a table's newer files are orphans its ``maintain`` deletes.

Order matters once: the landing zone's ingest index is copied before the catalog and the
segments after both, so every file the index says was ingested is in the backup (else a
restored lake would skip its content as "already ingested" without having it).

The backup is a data directory. Restored in the lake's place, its tables name its own
files; used anywhere else it is a copy (read-only) until ``advertisex relocate``. For the
default layout only: a configured catalog database or object store has backups of its
own (``pg_dump``, bucket versioning).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advertisex.errors import UserInputError
from advertisex.lake import durability
from advertisex.model.schemas import TABLES
from advertisex.util.storage import fsync_path

if TYPE_CHECKING:
    from advertisex.config import Settings

INDEX = Path("landing") / "_index"


@dataclass
class BackupReport:
    """What a backup copied."""

    to: str
    tables: int = 0
    table_files: int = 0  # metadata, manifests and data files of the tables
    segments: int = 0  # landing files
    bytes: int = 0
    past_files_gone: int = 0  # of older snapshots, deleted by upkeep while the copy ran
    seconds: float = 0.0


def backup(settings: Settings, to: Path) -> BackupReport:
    """Copy the lake of ``settings`` to the new folder ``to`` (see the module docstring)."""
    started = time.perf_counter()
    data = settings.data_dir.absolute()
    if not str(to).strip() or str(to) == ".":
        raise UserInputError(
            "name a new folder for the backup", hint="e.g. advertisex backup backups/monday"
        )
    to = to.absolute()
    partial = to.parent / f".{to.name}.partial-{uuid.uuid4().hex[:8]}"
    report = BackupReport(str(to))
    try:
        _check(settings, data, to)  # (a name too long for the file system fails here)
        made = _first_existing(partial.parent)  # the folders made for it flushed below
        partial.mkdir(parents=True)
        copier = _Copier(data, partial, report)
        # The packed markers and their journal are copied whole just below; the words kept for
        # erasures not at all (landing.summaries: a restored file is another identity).
        copier.tree(INDEX, skip=("packed.db", "words.db"))
        copier.database(INDEX / "blake3" / "packed.db")
        copier.database(Path("catalog.db"))
        copier.database(Path("monitor") / "state.db")
        _copy_tables(settings, partial / "catalog.db", copier)
        # The landing files (sealed ones: a segment being written is hidden until then).
        report.segments = copier.tree(Path("landing"), leave=INDEX.name)
        # On the disk before it is named a backup: what it wrote, files and folders (an
        # os.sync() flushed every disk of the machine, minutes on a busy shared host).
        durability.flush(copier.written, str(partial))
        partial.rename(to)
        try:
            folder = to.parent  # and that name too, before it is reported done
            fsync_path(folder)
            while folder != made:  # the folders made for it too, each named in its parent
                folder = folder.parent
                fsync_path(folder)
        except OSError:
            shutil.rmtree(to, ignore_errors=True)  # said below: nothing of it was kept
            raise
    except OSError as error:  # the backup's disk: full, read-only, not a folder …
        shutil.rmtree(partial, ignore_errors=True)
        from advertisex.errors import StorageError
        from advertisex.util.storage import os_reason

        raise StorageError(
            f"cannot write the backup to {to}: {os_reason(error)}; nothing of it was kept",
            hint="name a new folder where this user may write, with room for the lake",
        ) from error
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - started
    return report


def _check(settings: Settings, data: Path, to: Path) -> None:
    if settings.lake.catalog_uri or settings.lake.warehouse or settings.scale.landing:
        raise UserInputError(
            "backup copies the default layout (the catalog, the warehouse and the landing "
            "zone in the data directory); a configured catalog or object store is not here "
            "to copy",
            hint="back those up with their own tools (pg_dump of the catalog database, "
            "versioning or replication of the bucket)",
        )
    if not (data / "catalog.db").is_file():
        raise UserInputError(
            f"there is no lake to back up in {data} (no catalog.db)",
            hint="run this where your data is, or set data_dir (ADVERTISEX_DATA_DIR)",
        )
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise UserInputError(
            f"{to} exists and is not an empty folder",
            hint="name a new folder: a backup never writes over anything",
        )
    if to == data or data in to.parents:
        raise UserInputError(
            f"{to} is inside the lake's data directory {data}",
            hint="put the backup somewhere else (another disk is best)",
        )


def _copy_tables(settings: Settings, catalog: Path, copier: _Copier) -> None:
    """Every file the copied catalog names: each table's current state whole (one gone is
    a damaged lake: the backup stops, saying so), and what older snapshots still name."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import NoSuchTableError

    from advertisex.lake.history import manifests_read_once, referenced

    copied = SqlCatalog(settings.lake.catalog_name, uri=f"sqlite:///{catalog}")
    for name in TABLES:
        try:
            table = copied.load_table(name)
        except NoSuchTableError:
            continue
        copier.report.tables += 1
        # Each snapshot is asked for its files on its own (one expired meanwhile is passed
        # over), and the snapshots of a table share most of their manifests: each manifest
        # is read once, not once a snapshot (a lake of 51 snapshots a table: 15,426 reads).
        with manifests_read_once():
            current = table.current_snapshot()
            now = referenced(table, [current.snapshot_id] if current else [])
            needed = {table.metadata_location} | set(now.data) | now.manifests
            needed |= now.manifest_lists
            for url in sorted(now.all()):  # and the metadata's log of its older versions
                copier.file(_local(url), needed=url in needed)
            copied_now = now.all()
            for snapshot in table.metadata.snapshots:
                if current is not None and snapshot.snapshot_id == current.snapshot_id:
                    continue
                try:
                    past = referenced(table, [snapshot.snapshot_id]).all() - copied_now
                except FileNotFoundError:  # the snapshot expired since: its files go with it
                    continue
                for url in sorted(past):
                    copier.file(_local(url), needed=False)


def _first_existing(folder: Path) -> Path:
    """``folder`` or its nearest ancestor that exists (what ``mkdir(parents=True)`` of a
    folder under it makes starts below it)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _local(url: str) -> Path:
    return Path(url.removeprefix("file://"))


class _Copier:
    """Files of the data directory ``source`` copied to the same places under ``target``."""

    def __init__(self, source: Path, target: Path, report: BackupReport) -> None:
        self.source, self.target, self.report = source, target, report
        self.written: list[str] = []  # every file copied, to flush before the rename

    def file(self, path: Path, needed: bool) -> None:
        """Copy ``path`` (absolute, inside the source); a ``needed`` one that is gone means
        the lake lost it (``lake.damage``)."""
        if not path.is_relative_to(self.source):
            raise UserInputError(
                f"the lake's tables name files in {path.parent}, outside {self.source}: it "
                "is a copy or was moved",
                hint="back up the lake where it was made, or run advertisex relocate here first",
            )
        relative = path.relative_to(self.source)
        target = self.target / relative
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(path, target)  # its time too: orphan removal goes by the age
        except FileNotFoundError:
            if needed:
                from advertisex.lake.damage import DamagedFile

                raise _damaged(DamagedFile(_table_of(relative), str(path), "missing")) from None
            self.report.past_files_gone += 1
            return
        self.written.append(str(target))
        self.report.table_files += 1
        self.report.bytes += target.stat().st_size

    def tree(self, folder: Path, skip: str | tuple[str, ...] = "", leave: str = "") -> int:
        """Every file under ``folder`` but temporary ones, those whose names begin with
        ``skip`` (a database and its journal, copied apart) and the subfolder ``leave``
        (copied apart); files gone since they were listed (retention) are passed over.
        How many were copied."""
        root = self.source / folder
        copied = 0
        for directory, folders, names in os.walk(root):
            if leave and Path(directory) == root:
                folders[:] = [f for f in folders if f != leave]
            for name in names:
                if name.startswith(".") or (skip and name.startswith(skip)):
                    continue
                path = Path(directory) / name
                target = self.target / path.relative_to(self.source)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copy2(path, target)
                except FileNotFoundError:
                    continue
                copied += 1
                self.written.append(str(target))
                self.report.bytes += target.stat().st_size
        return copied

    def database(self, relative: Path) -> None:
        """A SQLite database as of now, by SQLite's online backup (its writers go on)."""
        path = self.source / relative
        if not path.is_file():
            return
        target = self.target / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with (
            contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as source,
            contextlib.closing(sqlite3.connect(target)) as copy,
        ):
            source.backup(copy)
        self.written.append(str(target))
        self.report.bytes += target.stat().st_size


def _table_of(relative: Path) -> str:
    """``warehouse/curated/impressions/data/…`` → ``curated.impressions``."""
    parts = relative.parts
    return f"{parts[1]}.{parts[2]}" if len(parts) > 2 else str(relative)


def _damaged(damaged: Any) -> Exception:
    from advertisex.errors import LakeDamagedError

    return LakeDamagedError(
        f"the backup stopped: {damaged.table}'s current state names {damaged.url}, which "
        "is missing (lost or damaged outside advertisex); nothing was written",
        hint="run advertisex query or status for the way back, then back up again",
    )
