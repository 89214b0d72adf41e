"""The data files of a table's current snapshot, listed without loading pyiceberg.

``advertisex query`` and ``advertisex report`` must answer in well under a second, and
importing pyiceberg's SQL catalog (SQLAlchemy, pydantic models, its Arrow FileIO) alone
costs more than that budget. Listing what a query reads needs far less: the table's
metadata location from the catalog database, the metadata file (JSON), the snapshot's
manifest list and its manifests (Avro, read with fastavro). That is the read half of
the Iceberg table spec, no more — planning with filters, schema evolution and delete
files stay pyiceberg's job.

:func:`current_files` answers for a SQLite catalog over a local warehouse (the default
set-up); for anything else — another catalog database, an object store, a snapshot with
delete files — it returns ``None`` and the caller asks pyiceberg (``Lake.data_files``).
The metadata locations of all the tables asked for are read in one SQL statement, so
the files belong to one committed state of the lake even while a batch commits.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advertisex.util import jsonutil
from advertisex.util.storage import local_path

# Iceberg manifest entry status and manifest content values (table spec, "Manifests").
_DELETED = 2
_DATA = 0


def current_files(
    catalog_uri: str, catalog_name: str, names: list[str]
) -> dict[str, list[str]] | None:
    """Local paths of the data files of each table in ``names`` (``namespace.table``) as of
    its current snapshot; a table not created yet or without snapshot has none.
    ``None`` when this fast path cannot answer (the caller plans with pyiceberg).

    >>> current_files("postgresql://db/catalog", "advertisex", ["curated.impressions"]) is None
    True
    """
    if not catalog_uri.startswith("sqlite:///"):
        return None
    locations = _metadata_locations(catalog_uri.removeprefix("sqlite:///"), catalog_name, names)
    if locations is None:
        return None
    listed: dict[str, list[str]] = {}
    for name in names:
        location = locations.get(name)
        files = _snapshot_files(location) if location else []
        if files is None:
            return None
        listed[name] = files
    return listed


@dataclass(frozen=True)
class TableLook:
    """What ``advertisex status`` shows of a table: its current snapshot's data files
    (local path, bytes), the snapshots its metadata keeps, the manifests of the current one."""

    files: tuple[tuple[str, int], ...]
    snapshots: int
    manifests: int


def table_looks(
    catalog_uri: str, catalog_name: str, names: list[str]
) -> dict[str, TableLook] | None:
    """:class:`TableLook` of each table in ``names`` the catalog holds (one not created is
    left out), as of one committed state; ``None`` where :func:`current_files` cannot
    answer either (the caller asks pyiceberg)."""
    if not catalog_uri.startswith("sqlite:///"):
        return None
    locations = _metadata_locations(catalog_uri.removeprefix("sqlite:///"), catalog_name, names)
    if locations is None:
        return None
    looks: dict[str, TableLook] = {}
    for name in names:
        location = locations.get(name)
        if location is None:
            continue
        look = _look(location)
        if look is None:
            return None
        looks[name] = look
    return looks


def foreign_table(
    catalog_uri: str, catalog_name: str, warehouse_uri: str
) -> tuple[str, str] | None:
    """(``namespace.table``, its metadata location) of a table the SQLite catalog at
    ``catalog_uri`` records outside the local ``warehouse_uri``; None when every table is
    inside it, or when this cannot be told without the catalog (another database, another
    storage, no catalog yet)."""
    if not catalog_uri.startswith("sqlite:///") or not warehouse_uri.startswith("file://"):
        return None
    database = catalog_uri.removeprefix("sqlite:///")
    if not Path(database).exists():
        return None
    inside = warehouse_uri.rstrip("/") + "/"
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as con:
            row = con.execute(
                "SELECT table_namespace || '.' || table_name, metadata_location "
                "FROM iceberg_tables WHERE catalog_name = ? AND metadata_location IS NOT NULL "
                "AND substr(metadata_location, 1, length(?)) != ? LIMIT 1",
                [catalog_name, inside, inside],
            ).fetchone()
    except sqlite3.Error:
        return None  # not (yet) a pyiceberg catalog: nothing recorded anywhere
    return (str(row[0]), str(row[1])) if row else None


def recorded_warehouse(table: str, metadata_location: str) -> str | None:
    """The warehouse a catalog places ``table`` (``namespace.name``) in, from its metadata
    location: the local path before ``/<namespace>/<name>/``; None when it is not so laid
    out or not on this machine.

    >>> recorded_warehouse("curated.clicks", "file:///d/warehouse/curated/clicks/metadata/1.json")
    '/d/warehouse'
    """
    path = local_path(metadata_location)
    namespace, name = table.split(".", 1)
    cut = path.rfind(f"/{namespace}/{name}/") if path else -1
    return path[:cut] if path and cut > 0 else None


def _metadata_locations(
    database: str, catalog_name: str, names: list[str]
) -> dict[str, str] | None:
    """name → metadata location, read in one statement; ``None`` if the catalog is unreadable."""
    if not Path(database).exists():
        return {}  # no catalog yet: nothing processed, every table empty
    wanted = [tuple(name.split(".", 1)) for name in names]
    condition = " OR ".join("(table_namespace = ? AND table_name = ?)" for _ in wanted)
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as con:
            rows = con.execute(
                "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables "
                f"WHERE catalog_name = ? AND ({condition})",
                [catalog_name, *(part for pair in wanted for part in pair)],
            ).fetchall()
    except sqlite3.Error:
        return None  # not (yet) a pyiceberg catalog, locked schema change …: ask pyiceberg
    return {f"{namespace}.{table}": location for namespace, table, location in rows if location}


def _snapshot_files(metadata_location: str) -> list[str] | None:
    """Live data files of the current snapshot named by a metadata file, or ``None``."""
    look = _look(metadata_location)
    return None if look is None else [path for path, _ in look.files]


# Metadata files, manifest lists and manifests are written once and never changed (a commit
# and ``relocate`` write new ones): what one names is read once per process. The console's
# and the monitor's looks, every 30 s for months, read only the tables that moved.
@functools.lru_cache(maxsize=64)
def _look(metadata_location: str) -> TableLook | None:
    """The table state a metadata file names, or ``None`` when pyiceberg must read it."""
    metadata_path = local_path(metadata_location)
    if metadata_path is None:
        return None
    metadata = _read_metadata(metadata_path)
    snapshots = metadata.get("snapshots") or []
    current = metadata.get("current-snapshot-id")
    if current is None or current == -1:
        return TableLook((), len(snapshots), 0)
    snapshot = next(s for s in snapshots if s["snapshot-id"] == current)
    manifest_list = local_path(snapshot.get("manifest-list", ""))
    if manifest_list is None:
        return None  # format v1 inline manifests or a remote list: pyiceberg knows
    manifests = avro_records(manifest_list)
    files: list[tuple[str, int]] = []
    for manifest in manifests:
        if manifest.get("content", _DATA) != _DATA:
            return None  # delete files: merge-on-read is pyiceberg's job
        manifest_path = local_path(manifest["manifest_path"])
        if manifest_path is None:
            return None
        for entry in avro_records(manifest_path):
            data_file = entry["data_file"]
            if entry["status"] == _DELETED:
                continue
            if data_file.get("content", _DATA) != _DATA:
                return None
            path = local_path(data_file["file_path"])
            if path is None:
                return None
            files.append((path, int(data_file["file_size_in_bytes"])))
    return TableLook(tuple(files), len(snapshots), len(manifests))


def _read_metadata(path: str) -> dict[str, Any]:
    if path.endswith(".gz.metadata.json"):
        import gzip

        with gzip.open(path, "rb") as handle:
            return jsonutil.loads(handle.read())  # type: ignore[no-any-return]
    with open(path, "rb") as handle:
        return jsonutil.loads(handle.read())  # type: ignore[no-any-return]


def avro_records(path: str) -> list[dict[str, Any]]:
    import fastavro

    with open(path, "rb") as handle:
        return [record for record in fastavro.reader(handle) if isinstance(record, dict)]
