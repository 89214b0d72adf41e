"""Data files of the lake's tables with their time bounds, kept up to date incrementally.

Planning a scan of an Iceberg table reads every manifest, which grows with the number of
commits (the follower commits a batch every few seconds). The monitor asks the same
question every minute — "which files can hold rows ingested since hour H?" — so it keeps
each table's files with the min/max ``ingest_time`` and ``event_time`` from the manifest
statistics, and on each call reads only the manifests the new snapshots added. A snapshot
that is not a plain append (a compaction, a replay) makes it plan the table afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from advertisex.lake.history import appended_since
from advertisex.lake.tables import Lake
from advertisex.util.timeutil import from_micros


@dataclass(frozen=True)
class DataFile:
    path: str
    ingest_min: datetime | None
    ingest_max: datetime | None
    event_min: datetime | None
    event_max: datetime | None
    size: int = 0  # bytes, as the table recorded it (lake.damage compares it)


class FileIndex:
    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._files: dict[str, list[DataFile]] = {}
        self._snapshot: dict[str, int | None] = {}

    def files(self, name: str) -> list[DataFile]:
        """Every data file of ``name``'s current snapshot."""
        from pyiceberg.exceptions import NoSuchTableError

        try:
            table = self.lake.catalog.load_table(name)  # fresh metadata: others commit
        except NoSuchTableError:
            return []  # nothing processed yet
        snapshot = table.current_snapshot()
        current = snapshot.snapshot_id if snapshot else None
        known = self._snapshot.get(name, -1)
        if current == known:
            return self._files[name]
        added = appended_since(table, known) if known not in (-1, None) else None
        if snapshot is None:
            self._files[name] = []
        elif added is not None:
            self._files[name] = self._files[name] + [_stats(table, f) for f in added]
        else:
            self._files[name] = [_stats(table, t.file) for t in table.scan().plan_files()]
        self._snapshot[name] = current
        return self._files[name]

    def paths(self, name: str) -> list[str]:
        """Paths of ``name``'s current data files: listed from the table's metadata where
        the lake can without pyiceberg (``Lake.listed_files``), else :meth:`files`'."""
        listed = self.lake.listed_files([name])
        return listed[name] if listed is not None else [f.path for f in self.files(name)]


def _stats(table: Any, data_file: Any) -> DataFile:
    from pyiceberg.conversions import from_bytes

    schema = table.schema()

    def bound(bounds: dict[int, bytes] | None, column: str) -> datetime | None:
        try:
            field = schema.find_field(column)
        except ValueError:
            return None
        raw = (bounds or {}).get(field.field_id)
        if raw is None:
            return None
        return from_micros(from_bytes(field.field_type, raw))  # type: ignore[arg-type]

    path = data_file.file_path
    return DataFile(
        path.removeprefix("file://"),
        bound(data_file.lower_bounds, "ingest_time"),
        bound(data_file.upper_bounds, "ingest_time"),
        bound(data_file.lower_bounds, "event_time"),
        bound(data_file.upper_bounds, "event_time"),
        data_file.file_size_in_bytes,
    )
