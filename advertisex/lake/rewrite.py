"""Swap some of a table's data files for others in one atomic commit.

pyiceberg 0.12 has no ``rewrite_data_files`` (compaction) or ``rewrite_manifests``, so
this module does what Iceberg's ``RewriteFiles`` does, on pyiceberg's own snapshot
producer: the old files are removed and the new ones added in one snapshot, and if
another writer (the processor) commits first, pyiceberg's commit retry rebuilds the
snapshot on the fresh metadata. Concurrent appends do not conflict — a compaction keeps
them — only a concurrent removal of a file being replaced does, as in Iceberg.

Two kinds of swap:

* ``compaction`` (Iceberg operation ``replace``): the same rows in fewer, sorted files;
* ``erasure`` / ``retention`` (operation ``delete``): rows removed. An erasure also
  writes every manifest of the new snapshot without "deleted" entries: those keep the
  statistics (column bounds) of the files they replaced, and a forgotten user must not
  survive in them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.lake.history import COMPACTION, ERASURE, UPKEEP
from advertisex.util import storage

if TYPE_CHECKING:
    from advertisex.config import ScaleSettings
    from advertisex.lake.datafiles import Footer


def commit_swap(
    table: Any,
    removed: list[Any],
    added: list[str],
    what: str | None,
    properties: dict[str, str] | None = None,
    footers: Mapping[str, Footer] | None = None,
) -> None:
    """Replace data files ``removed`` (manifest ``DataFile``s) by the Parquet files at
    ``added`` in one snapshot marked as upkeep ``what`` (None: an overwrite of rows, no
    upkeep: the marts' slices). ``footers``: the writer's footers of files in ``added``,
    not read back from them (``lake.datafiles.add_files``)."""
    from pyiceberg.table import TableProperties
    from pyiceberg.table import _parquet_files_to_data_files as data_files_of
    from pyiceberg.table.snapshots import Operation

    from advertisex.lake.datafiles import data_file
    from advertisex.lake.transaction import transaction

    if what is None:
        operation = Operation.OVERWRITE
    else:
        operation = Operation.REPLACE if what == COMPACTION else Operation.DELETE
    summary = {UPKEEP: what, **(properties or {})} if what else dict(properties or {})
    with transaction(table) as tx:  # one metadata copy, not one per file swapped
        if tx.table_metadata.name_mapping() is None:  # our files carry no field ids
            mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
            tx.set_properties({TableProperties.DEFAULT_NAME_MAPPING: mapping})
        producer = _swap_producer()(
            operation, tx, table.io, snapshot_properties=summary, clean=what == ERASURE
        )
        for removed_file in removed:
            producer.delete_data_file(removed_file)
        if footers is None:
            new_files = data_files_of(tx.table_metadata, sorted(added), table.io)
        else:
            new_files = (
                data_file(table, tx.table_metadata, path, footers.get(path))
                for path in sorted(added)
            )
        for new_file in new_files:
            producer.append_data_file(new_file)
        producer.commit()


def write_sorted(
    data: pa.Table,
    location: str,
    prefix: str,
    sort: list[tuple[str, str]],
    rows_per_file: int,
    scale: ScaleSettings | None,
    table: str,
) -> Iterator[str]:
    """Write ``data`` sorted by ``sort`` ((column, ascending|descending), nulls last, as
    AdvertiseX tables are ordered) as Parquet files of at most ``rows_per_file`` rows
    under ``location`` (a partition folder), as data files of ``table`` are written
    (``datafiles.parquet_options``); yields the file URLs."""
    import pyarrow.parquet as pq

    from advertisex.lake.datafiles import parquet_options

    if sort:
        data = data.take(pc.sort_indices(data, sort_keys=sort))
    for start in range(0, data.num_rows, max(rows_per_file, 1)):
        part = data.slice(start, rows_per_file)
        url = storage.join(location, f"{prefix}-{uuid.uuid4().hex[:16]}.parquet")
        filesystem, path = storage.resolve(url, scale)
        if not storage.is_remote(url):
            filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(part, path, filesystem=filesystem, **parquet_options(table, part.schema))
        yield url


def sort_keys(table: Any) -> list[tuple[str, str]]:
    """The table's sort order as PyArrow sort keys (nulls last: how every AdvertiseX table
    is created, and what the batch writers' ORDER BY does)."""
    from pyiceberg.table.sorting import NullOrder, SortDirection

    schema = table.schema()
    order = table.sort_order().fields
    if any(f.null_order != NullOrder.NULLS_LAST for f in order):
        raise ValueError(f"{table.name()}: only nulls-last sort orders can be compacted")
    return [
        (
            schema.find_column_name(f.source_id),
            "ascending" if f.direction == SortDirection.ASC else "descending",
        )
        for f in order
    ]


def read_files(paths: list[str], scale: ScaleSettings | None, schema: pa.Schema) -> pa.Table:
    """Data files read whole and conformed to ``schema`` (columns a file predates are null)."""
    import pyarrow.parquet as pq

    parts = []
    for url in paths:
        filesystem, path = storage.resolve(url, scale)
        parts.append(_conformed(pq.read_table(path, filesystem=filesystem), schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def _conformed(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` with ``schema``'s columns, cast; those it predates are null."""
    columns = [
        data.column(f.name).cast(f.type)
        if f.name in data.column_names
        else pa.nulls(data.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


# Rows read, filtered and written at a time when a file is rewritten without some rows
# (erasure): what the rewrite holds in memory, whatever the file's size (a compacted file
# is up to 128 MiB of Parquet, several GiB in memory). DuckDB's row groups are as large.
STREAM_ROWS = 122_880


def rewrite_without(
    url: str,
    dropped: pa.ChunkedArray,
    schema: pa.Schema,
    prefix: str,
    scale: ScaleSettings | None,
    table: str | None = None,
) -> tuple[pa.Table, str | None]:
    """The file at ``url`` written again beside it without the rows where ``dropped`` (one
    flag a row, in file order) holds, in the same order, :data:`STREAM_ROWS` at a time:
    (the dropped rows conformed to ``schema``, the new file's URL — None when no row is
    left), written as data files of ``table`` are (``datafiles.parquet_options``; else
    Parquet's defaults, zstd). A failed write leaves no new file behind."""
    import pyarrow.parquet as pq

    from advertisex.lake.datafiles import parquet_options

    filesystem, path = storage.resolve(url, scale)
    target = storage.join(url.rsplit("/", 1)[0], f"{prefix}-{uuid.uuid4().hex[:16]}.parquet")
    target_filesystem, target_path = storage.resolve(target, scale)
    gone: list[pa.Table] = []
    writer = None
    offset = 0
    try:
        source = pq.ParquetFile(path, filesystem=filesystem)
        for batch in source.iter_batches(batch_size=STREAM_ROWS, use_threads=False):
            rows = _conformed(pa.Table.from_batches([batch]), schema)
            flags = dropped.slice(offset, rows.num_rows)
            offset += rows.num_rows
            if pc.any(flags).as_py():
                gone.append(rows.filter(flags))
                rows = rows.filter(pc.invert(flags))
            if rows.num_rows == 0:
                continue
            if writer is None:
                options = parquet_options(table, schema) if table else {"compression": "zstd"}
                writer = pq.ParquetWriter(
                    target_path, schema, filesystem=target_filesystem, **options
                )
            writer.write_table(rows)
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
            with contextlib.suppress(OSError):
                target_filesystem.delete_file(target_path)
        raise
    removed = pa.concat_tables(gone) if gone else schema.empty_table()
    return removed, target if writer is not None else None


_PRODUCER: Any = None


def _swap_producer() -> Any:
    """pyiceberg's overwrite producer, validated as a rewrite and optionally writing
    clean manifests (built on first use: pyiceberg is imported lazily)."""
    global _PRODUCER
    if _PRODUCER is not None:
        return _PRODUCER
    from pyiceberg.manifest import ManifestEntry, ManifestEntryStatus
    from pyiceberg.table.snapshots import Operation, Summary
    from pyiceberg.table.update.snapshot import _OverwriteFiles
    from pyiceberg.table.update.validate import (
        _validate_data_files_exist,
        _validate_no_new_deletes_for_data_files,
    )

    class SwapFiles(_OverwriteFiles):  # type: ignore[misc]
        def __init__(self, *args: Any, clean: bool = False, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._clean = clean

        def _validate_concurrency(self) -> None:
            """Iceberg's RewriteFiles rule: the replaced files must still be there and
            have no new deletes; appends committed meanwhile are kept, not a conflict."""
            window = self._commit_window
            if window is None or window.is_empty() or window.head is None:
                return
            table = self._transaction._table
            removed = self._deleted_data_files
            _validate_data_files_exist(table, window.head, removed, window.base)
            _validate_no_new_deletes_for_data_files(table, window.head, None, removed, window.base)

        def _summary(self, snapshot_properties: Any = None) -> Any:
            # pyiceberg computes summary totals for append/overwrite/delete only; a
            # replace has the same totals as an overwrite, so compute them as one.
            operation, self._operation = self._operation, Operation.OVERWRITE
            try:
                summary = super()._summary(snapshot_properties or {})
            finally:
                self._operation = operation
            totals = {k: v for k, v in summary.model_dump().items() if k != "operation"}
            return Summary(operation, **totals)

        def _deleted_entries(self) -> list[ManifestEntry]:
            entries = super()._deleted_entries()  # also checks every file is in the parent
            return [] if self._clean else entries

        def _existing_manifests(self) -> list[Any]:
            manifests = super()._existing_manifests()
            if not self._clean:
                return manifests
            return [m for m in (self._without_deleted(m) for m in manifests) if m is not None]

        def _without_deleted(self, manifest: Any) -> Any:
            """``manifest`` rewritten with its live entries only (None if it has none)."""
            if not manifest.deleted_files_count:
                return manifest
            live = [
                e
                for e in manifest.fetch_manifest_entry(self._io, discard_deleted=False)
                if e.status != ManifestEntryStatus.DELETED
            ]
            if not live:
                return None
            with self.new_manifest_writer(self.spec(manifest.partition_spec_id)) as writer:
                for entry in live:
                    writer.existing(entry)
            return writer.to_manifest_file()

    _PRODUCER = SwapFiles
    return _PRODUCER
