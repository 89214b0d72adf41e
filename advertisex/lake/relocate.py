"""A moved or copied lake made this data directory's own: its tables name the files here.

Iceberg records every file by its absolute path: the metadata file names the manifest
lists, they name the manifests, the manifests name the data files. A lake moved to another
folder (``mv data /disk2/data``) finds none of its files; a copy (``cp -r data copy``)
names the original's, and is read-only for that reason (``Lake.check_home``).

Relocating rewrites, for every table recorded under another warehouse, what reaches its
files — its current metadata file, every snapshot's manifest list and the manifests they
list — with that warehouse's path replaced by this one's, under new names next to the old
ones, then moves every table's pointer in one catalog transaction. Data files are not
touched: they are already here. Snapshots, their ids and sequence numbers stay as they
were, so time travel and the marts' incremental positions go on. A crash before the
transaction leaves only files nothing references (``maintain`` removes them as orphans),
and the rerun starts over; after it, the lake is whole here and the original, if any, is
untouched. Only the default layout (a SQLite catalog and the warehouse in the data
directory) is relocated: a configured catalog or object store keeps its own paths.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advertisex.errors import CommitConflictError, LakeError, UserInputError
from advertisex.lake import durability
from advertisex.lake.listing import recorded_warehouse
from advertisex.util import jsonutil
from advertisex.util.storage import local_path


@dataclass
class Relocation:
    """What relocating did: the folder the tables named before, and the tables moved."""

    was: str | None = None  # the warehouse the tables were recorded in (None: none moved)
    tables: list[str] = field(default_factory=list)
    manifests: int = 0  # manifest lists and manifests rewritten


@dataclass(frozen=True)
class _Table:
    namespace: str
    name: str
    location: str  # metadata location as the catalog records it


def relocate(catalog_uri: str, catalog_name: str, warehouse_uri: str) -> Relocation:
    """Make every table of the SQLite catalog at ``catalog_uri`` recorded outside the local
    warehouse ``warehouse_uri`` name the files under it; :class:`Relocation` says what moved.
    Nothing to do (every table already here) is not an error."""
    database = catalog_uri.removeprefix("sqlite:///")
    here = local_path(warehouse_uri)
    if database == catalog_uri or here is None:
        raise UserInputError(
            "relocation is for the default layout (a SQLite catalog and the warehouse in "
            "the data directory); a configured catalog or object store keeps its own paths",
            hint="unset lake.catalog_uri and lake.warehouse, or point them where the lake is",
        )
    here = here.rstrip("/")
    tables = [t for t in _tables(database, catalog_name) if not _under(t.location, here)]
    if not tables:
        return Relocation()
    was = _warehouse_of(tables[0])
    if any(_warehouse_of(t) != was for t in tables):
        raise LakeError(
            "the catalog records tables under more than one other folder: "
            + ", ".join(sorted({_warehouse_of(t) for t in tables}))
        )
    mover = _Mover(was, here, token=uuid.uuid4().hex[:8])
    moved = {t: mover.table(t) for t in tables}
    durability.sync(mover.written, here)  # on the disk before the catalog names them
    _publish(database, catalog_name, moved)
    return Relocation(was, [f"{t.namespace}.{t.name}" for t in tables], mover.rewritten)


def _tables(database: str, catalog_name: str) -> list[_Table]:
    if not os.path.exists(database):
        return []  # no catalog yet: nothing was ever committed, nothing to relocate
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as con:
        rows = con.execute(
            "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables "
            "WHERE catalog_name = ? AND metadata_location IS NOT NULL",
            [catalog_name],
        ).fetchall()
    return [_Table(str(n), str(t), str(m)) for n, t, m in rows]


def _under(location: str, folder: str) -> bool:
    path = local_path(location)
    return path is not None and path.startswith(folder + "/")


def _warehouse_of(table: _Table) -> str:
    """The warehouse a table is recorded in."""
    found = recorded_warehouse(f"{table.namespace}.{table.name}", table.location)
    if found is None:
        raise LakeError(f"{table.namespace}.{table.name} is recorded at {table.location}")
    return found


class _Mover:
    """Rewrites the metadata of tables recorded under ``was`` to name files under ``here``
    (each manifest once, however many snapshots list it)."""

    def __init__(self, was: str, here: str, token: str) -> None:
        self.was, self.here, self.token = was, here, token
        self.written: list[str] = []
        self.rewritten = 0
        self._manifests: dict[str, str] = {}  # old manifest location → new

    def table(self, table: _Table) -> str:
        """Write the table's relocated metadata file; return its location."""
        source = self._local_here(table.location)
        metadata = jsonutil.loads(Path(source).read_bytes())
        relocated = self._paths(metadata)
        for was, snapshot in zip(
            metadata.get("snapshots", []), relocated.get("snapshots", []), strict=True
        ):
            if was.get("manifest-list"):
                snapshot["manifest-list"] = self._manifest_list(was["manifest-list"])
        folder, name = os.path.split(source)
        version = int(name.split("-", 1)[0]) + 1 if name[:5].isdigit() else 1
        target = os.path.join(folder, f"{version:05d}-{uuid.uuid4()}.metadata.json")
        _write_new(target, jsonutil.dumps(relocated))
        self.written.append(target)
        return _as(table.location, target)

    def _manifest_list(self, location: str) -> str:
        """The manifest list at ``location`` (as recorded) rewritten here: its manifests too."""
        return self._avro(location, self._manifest)

    def _manifest(self, record: dict[str, Any]) -> dict[str, Any]:
        old = record["manifest_path"]
        if old not in self._manifests:
            self._manifests[old] = self._avro(old, self._paths)
        return {**record, "manifest_path": self._manifests[old]}

    def _avro(self, location: str, change: Any) -> str:
        """Copy the Avro file at ``location`` (as recorded) here under a new name, each
        record passed through ``change``, its schema and header metadata as they were."""
        import fastavro

        source = self._local_here(location)
        with open(source, "rb") as handle:
            reader = fastavro.reader(handle)
            schema, codec = reader.writer_schema, reader.codec
            header = {k: v for k, v in reader.metadata.items() if not k.startswith("avro.")}
            records = [change(r) for r in reader]
        stem, suffix = os.path.splitext(source)
        target = f"{stem}-moved-{self.token}{suffix}"
        with open(target, "xb") as out:
            fastavro.writer(out, schema, records, codec=codec, metadata=header)
        self.written.append(target)
        self.rewritten += 1
        return _as(location, target)

    def _local_here(self, location: str) -> str:
        """Where the file recorded at ``location`` is in this warehouse."""
        path = local_path(location)
        if path is None or not path.startswith(self.was + "/"):
            raise LakeError(f"{location} is not under {self.was}")
        here = self.here + path[len(self.was) :]
        if not os.path.exists(here):
            raise UserInputError(
                f"{here} is missing: this data directory holds only part of the lake made "
                f"in {os.path.dirname(self.was)}",
                hint="copy or move the whole data directory, then relocate again",
            )
        return here

    def _paths(self, value: Any) -> Any:
        """``value`` with every string naming a file under ``was`` made to name it here."""
        if isinstance(value, str):
            path = local_path(value)
            if path is not None and (path == self.was or path.startswith(self.was + "/")):
                return _as(value, self.here + path[len(self.was) :])
            return value
        if isinstance(value, dict):
            return {k: self._paths(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._paths(v) for v in value]
        return value


def _as(recorded: str, path: str) -> str:
    """``path`` written as ``recorded`` was (a ``file://`` URL or a plain path)."""
    return f"file://{path}" if recorded.startswith("file://") else path


def _write_new(path: str, data: bytes) -> None:
    with open(path, "xb") as out:
        out.write(data)


def _publish(database: str, catalog_name: str, moved: dict[_Table, str]) -> None:
    """Every table's pointer moved in one transaction, each only from what it was read at."""
    con = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        for table, location in moved.items():
            changed = con.execute(
                "UPDATE iceberg_tables SET metadata_location = ?, "
                "previous_metadata_location = ? WHERE catalog_name = ? AND "
                "table_namespace = ? AND table_name = ? AND metadata_location = ?",
                [
                    location,
                    table.location,
                    catalog_name,
                    table.namespace,
                    table.name,
                    table.location,
                ],
            ).rowcount
            if changed != 1:
                con.execute("ROLLBACK")
                raise CommitConflictError(
                    f"{table.namespace}.{table.name} changed while it was relocated; "
                    "nothing was relocated",
                    hint="run the same command again once nothing else writes to the lake",
                )
        con.execute("COMMIT")
    finally:
        con.close()
