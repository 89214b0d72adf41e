"""Compaction: a partition's small data files rewritten into few files near the target size.

Every micro-batch adds one small file per table and day. Once a partition holds
``maintenance.min_input_files`` files smaller than 3/4 of ``maintenance.target_file_bytes``,
they are packed into groups of about the target size; each group is read, sorted as the
table's sort order says, and written as one file, and all of a table's groups are
swapped in by one ``replace`` snapshot (``lake.rewrite``): readers see the old files or
the new ones, never both, and a processor commit racing it is kept.

A group is read whole to be sorted (read, sorted copy, writer: about three times its rows'
decoded size), so it is also kept within ``maintenance.compaction_group_bytes`` of rows
decoded: packed by Parquet bytes alone, a day of the 10 M-event lake's impressions made
`maintain` peak at 4 GiB, where the processor keeps to 1.5 GiB. A file's decoded size is
its record count times the bytes a row of its table takes once read (measured on the
first rows of one file of the table, :func:`_row_bytes`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from advertisex.lake.history import COMPACTION, live_files
from advertisex.lake.rewrite import commit_swap, read_files, sort_keys, write_sorted
from advertisex.model.schemas import TABLES

if TYPE_CHECKING:
    from advertisex.config import Settings

SMALL = 0.75  # a file under this share of the target size is small (Iceberg's default)


@dataclass
class CompactionPlan:
    """Groups of small files to rewrite, each into one file."""

    groups: list[list[Any]] = field(default_factory=list)

    @property
    def files(self) -> int:
        return sum(len(g) for g in self.groups)

    @property
    def bytes(self) -> int:
        return sum(f.file_size_in_bytes for g in self.groups for f in g)


def plan(table: Any, settings: Settings) -> CompactionPlan:
    """Which small files of ``table`` to rewrite, grouped by partition and packed by size:
    their Parquet bytes within the target, their rows decoded within the group budget."""
    upkeep = settings.maintenance
    target = upkeep.target_file_bytes
    by_partition: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for data_file in live_files(table):
        if data_file.file_size_in_bytes < SMALL * target:
            by_partition[(data_file.spec_id, repr(data_file.partition))].append(data_file)
    chosen = CompactionPlan()
    row_bytes: float | None = None  # a row of this table, decoded (measured once, if needed)
    for files in by_partition.values():
        if len(files) < upkeep.min_input_files:
            continue
        if row_bytes is None:
            row_bytes = _row_bytes(files, settings)
        files.sort(key=lambda f: f.file_path)  # names start with the batch: arrival order
        group: list[Any] = []
        size = decoded = 0.0
        for data_file in files:
            grows = data_file.record_count * row_bytes
            if group and (
                size + data_file.file_size_in_bytes > target
                or decoded + grows > upkeep.compaction_group_bytes
            ):
                chosen.groups.append(group)
                group, size, decoded = [], 0, 0
            group.append(data_file)
            size += data_file.file_size_in_bytes
            decoded += grows
        chosen.groups.append(group)
    chosen.groups = [g for g in chosen.groups if len(g) > 1]
    return chosen


def compact(table: Any, name: str, work: CompactionPlan, settings: Settings) -> int:
    """Rewrite each group of ``work`` into one sorted file and swap them in; returns the
    number of files written."""
    if not work.groups:
        return 0
    schema = TABLES[name].schema
    keys = sort_keys(table)
    written: list[str] = []
    for group in work.groups:
        rows = read_files([f.file_path for f in group], settings.scale, schema)
        folder = group[0].file_path.rsplit("/", 1)[0]
        written.extend(
            write_sorted(rows, folder, "compacted", keys, rows.num_rows, settings.scale, name)
        )
    removed = [f for g in work.groups for f in g]
    commit_swap(table, removed, written, COMPACTION)
    return len(written)


def _row_bytes(files: list[Any], settings: Settings) -> float:
    """The bytes a row of these files takes read into memory, measured on the first rows
    of one (read whole, dictionary-encoded text takes far more than written)."""
    import pyarrow.parquet as pq

    from advertisex.util import storage

    sample = next((f for f in files if f.record_count), None)
    if sample is None:
        return 0.0
    filesystem, path = storage.resolve(sample.file_path, settings.scale)
    with filesystem.open_input_file(path) as handle:
        first = next(pq.ParquetFile(handle).iter_batches(batch_size=_SAMPLE_ROWS), None)
    return first.nbytes / first.num_rows if first is not None and first.num_rows else 0.0


_SAMPLE_ROWS = 10_000  # rows a row's size is measured on
