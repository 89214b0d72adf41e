"""Data files written by AdvertiseX itself, then registered in one catalog transaction.

Both runners write a batch's rows as Parquet, one file per table and partition day, into
the table's location, and the committer adds them with pyiceberg's ``add_files`` inside
the batch's atomic transaction (the Spark runner's executors write, its driver commits).
The rows arrive already sorted as the table is, so splitting them by day is one pass per
day — cheaper than pyiceberg's general partition split of an ``append`` — and the files
of several tables are encoded in parallel (Parquet encoding releases the GIL). A crash
before the transaction leaves only files no snapshot references; the transaction fsyncs
them first (:mod:`advertisex.lake.durability`), and the writer starts their writeback.

Files carry no Iceberg field ids: ``add_files`` maps columns by name (it records the
table's name mapping) and takes each file's partition and statistics from its footer —
the metadata the writer returned when this process wrote the file, else read back.
Names are unique (batch id + random suffix), so the duplicate-file check, which reads
every manifest of the table, is skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.config import ScaleSettings
from advertisex.errors import StorageError
from advertisex.lake import durability
from advertisex.model.schemas import TABLES, TableSpec
from advertisex.util import storage
from advertisex.util.arrays import used_dictionaries, utc_days

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata

# Columns whose values hardly repeat: a dictionary page would only cost time (a third of
# the Parquet encoding of curated.impressions) and bytes, so they are written plain. Page
# URLs and bid prices too: over the 1 M-event benchmark's batches a dictionary made
# website 0.082 s of CPU and 4.0 MB (plain: 0.057 s, 3.3 MB), bid_price and floor_price
# 0.031 and 0.030 s (plain: 0.015 and 0.018 s, 1.4 and 1.7 MB against 1.7 and 1.6).
_NEARLY_UNIQUE = frozenset(
    {
        "impression_id",
        "event_id",
        "auction_id",
        "payload_hash",
        "event_time",
        "source_position",
        "raw",
        "extras",
        "website",
        "bid_price",
        "floor_price",
    }
)


class Footer(NamedTuple):
    """What committing a data file needs of it: its Parquet metadata and its size."""

    metadata: Any  # pyarrow.parquet.FileMetaData, as the writer wrote it
    size: int


class WrittenFile(NamedTuple):
    """One data file written for a table, not yet registered in it."""

    url: str
    rows: int
    newest: int | None  # newest event time in the file, µs since the epoch (None: no such column)
    footer: Footer | None = None  # None: read from the file when it is committed


def write_data_files(
    table_name: str,
    data: pa.Table,
    location: str,
    prefix: str,
    scale: ScaleSettings | None,
    written: Callable[[str, pa.Table], None] | None = None,
) -> Iterator[WrittenFile]:
    """Write ``data`` under ``location``/data, one file per partition day; ``written`` is
    told of each file once it is whole (its URL and its rows)."""
    import pyarrow.parquet as pq

    if data.num_rows == 0:
        return
    spec = TABLES[table_name]
    column = spec.partition_by_day
    for day, part in _by_day(data, column):
        part = used_dictionaries(part)  # a day's rows of a batch: not the batch's dictionary
        folder = f"{column}_day={day}" if column else ""
        name = f"{prefix}-{uuid.uuid4().hex[:16]}.parquet"
        url = storage.join(location, "data", folder, name)
        filesystem, path = storage.resolve(url, scale)
        try:
            if not storage.is_remote(url):
                filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
            footer: list[Any] = []  # the writer's own FileMetaData: no read-back to commit it
            with filesystem.open_output_stream(path) as sink:
                writer = pq.ParquetWriter(
                    sink,
                    part.schema,
                    **parquet_options(table_name, part.schema),
                    write_batch_size=batch_rows(part),
                    metadata_collector=footer,
                    # Columns handed over dictionary-encoded (TableSpec.few_values) are plain
                    # text in the file: its Arrow schema is left out, so that every reader
                    # (pyarrow, pyiceberg) takes their type from Parquet's, as for any other file.
                    store_schema=not _any_dictionary(part.schema),
                )
                try:
                    writer.write_table(part)
                except BaseException:
                    # Torn, and removed below. Left open, its finalizer would close it and
                    # fail to collect the footer, printing a traceback beside our message.
                    writer.is_open = False
                    raise
                writer.close()  # only once written: a failed write has no metadata to collect
                size = sink.tell()
        except OSError as error:  # a full disk, a lost mount, a refusing object store
            remove_files([url], scale)  # the torn file is nobody's
            raise StorageError(
                f"cannot write {table_name} data under {location}: {storage.os_reason(error)}; "
                "nothing of this batch was committed",
                hint="free space or fix the storage, then run the same command again: "
                "it resumes with what is pending",
            ) from error
        durability.start_writeback(url)  # the commit's fsync then finds it (mostly) written
        newest = (
            pc.max(part.column("event_time").cast(pa.int64())).as_py()
            if "event_time" in part.column_names
            else None
        )
        if written is not None:
            written(url, part)
        yield WrittenFile(url, part.num_rows, newest, Footer(footer[0], size))


def parquet_options(table_name: str, schema: pa.Schema) -> dict[str, Any]:
    """How a data file of ``table_name`` with columns ``schema`` is written, by whichever
    writer writes it (a batch, a compaction, an erasure): zstd, a dictionary only where
    values repeat, delta encodings where they climb or share prefixes, and the statistics
    the table keeps — each chosen for the reason given where it is defined."""
    return {
        "compression": "zstd",
        "use_dictionary": _dictionary_paths(schema),
        "column_encoding": _encodings(schema),
        "write_statistics": _statistics_paths(TABLES[table_name], schema),
    }


# The Parquet writer's data page (Arrow's default size) and how many rows it hands its
# encoders at a time at most (Arrow's default: 1,024 whatever their width).
PAGE_BYTES = 1 << 20
BATCH_ROWS_MAX = 1 << 15


def batch_rows(data: pa.Table) -> int:
    """How many of ``data``'s rows the Parquet writer encodes at a time: about a page of its
    widest column (by its average value), from Arrow's default 1,024 to
    :data:`BATCH_ROWS_MAX`. The writer checks a page's size after each such batch, so a page
    of wide values still ends near :data:`PAGE_BYTES`; narrow rows — ids, times, codes — no
    longer pay the per-batch work (statistics, levels, size checks) 30 times a page: the 2 M
    benchmark's impressions and bids 0.77 → 0.72 s of the writer's CPU, the same bytes.

    >>> batch_rows(pa.table({"n": pa.array(range(4096), pa.int64())}))
    32768
    >>> batch_rows(pa.table({"raw": ["x" * 4096] * 4}))
    1024
    """
    if data.num_rows == 0:
        return BATCH_ROWS_MAX
    widest = max((column.nbytes for column in data.columns), default=0) / data.num_rows
    return int(min(BATCH_ROWS_MAX, max(1024, PAGE_BYTES // max(widest, 1))))


def _dictionary_paths(schema: pa.Schema) -> list[str]:
    """The Parquet columns to dictionary-encode: every column but the nearly unique ones,
    named as Parquet names them — a nested column by each of its leaves (a map's keys and
    values, a list's elements), which the writer does not find under the column's name.

    >>> _dictionary_paths(pa.schema([("ad_targeting", pa.map_(pa.string(), pa.string())),
    ...     ("reasons", pa.list_(pa.string())), ("auction_id", pa.string())]))
    ['ad_targeting.key_value.key', 'ad_targeting.key_value.value', 'reasons.list.element']
    """
    return _paths_but(schema, _NEARLY_UNIQUE)


# Nearly unique columns written in Parquet's delta encodings instead of plain: positions and
# times climb by small steps (a few bits a row where plain holds 64), ids and hashes share
# their prefixes. Less for zstd to do after: the 2 M benchmark's impressions and bids, these
# columns 0.46 → 0.32 s of the writer's CPU (best of five, column by column), the files 3 %
# smaller; read as fast by pyarrow and DuckDB (as every Parquet reader of late: Spark 3.5,
# pyiceberg through pyarrow). URLs stay plain: the delta encoding cost them more.
_DELTA_ENCODINGS = {
    "source_position": "DELTA_BINARY_PACKED",
    "event_time": "DELTA_BINARY_PACKED",
    "impression_id": "DELTA_BYTE_ARRAY",
    "event_id": "DELTA_BYTE_ARRAY",
    "auction_id": "DELTA_BYTE_ARRAY",
    "payload_hash": "DELTA_BYTE_ARRAY",
}


def _encodings(schema: pa.Schema) -> dict[str, str] | None:
    """The delta encoding of each of ``schema``'s columns named in :data:`_DELTA_ENCODINGS`
    whose type it fits (not dictionary-encoded: those are in :data:`_NEARLY_UNIQUE`).

    >>> _encodings(pa.schema([("event_time", pa.timestamp("us")), ("auction_id", pa.string()),
    ...     ("event_id", pa.int32())]))
    {'event_time': 'DELTA_BINARY_PACKED', 'auction_id': 'DELTA_BYTE_ARRAY'}
    """
    fits = {
        "DELTA_BINARY_PACKED": lambda t: pa.types.is_int64(t) or pa.types.is_timestamp(t),
        "DELTA_BYTE_ARRAY": pa.types.is_string,
    }
    chosen = {
        field.name: _DELTA_ENCODINGS[field.name]
        for field in schema
        if field.name in _DELTA_ENCODINGS and fits[_DELTA_ENCODINGS[field.name]](field.type)
    }
    return chosen or None


def _statistics_paths(spec: TableSpec, schema: pa.Schema) -> bool | list[str]:
    """The Parquet columns whose statistics are written: those the table keeps
    (``TableSpec.statistics``; its properties tell pyiceberg not to look for the others').

    >>> _statistics_paths(TABLES["curated.clicks"], pa.schema([("event_id", pa.string()),
    ...     ("campaign_id", pa.string()), ("user_id", pa.string())]))
    ['campaign_id', 'user_id']
    """
    without = set(spec.without_statistics())
    return _paths_but(schema, without) if without else True


def _paths_but(schema: pa.Schema, left_out: Collection[str]) -> list[str]:
    """The Parquet paths of every leaf of ``schema``'s columns but those named in ``left_out``."""
    return [
        path
        for field in schema
        if field.name not in left_out
        for path in _leaf_paths(field.name, field.type)
    ]


def _leaf_paths(path: str, kind: pa.DataType) -> list[str]:
    """Parquet's names for the leaf columns of a column at ``path`` of type ``kind``
    (Arrow's writer: ``key_value.key`` / ``key_value.value`` in a map, ``list.element``
    in a list, a struct's fields by name)."""
    if pa.types.is_map(kind):
        return [
            *_leaf_paths(f"{path}.key_value.key", kind.key_type),
            *_leaf_paths(f"{path}.key_value.value", kind.item_type),
        ]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _leaf_paths(f"{path}.list.element", kind.value_type)
    if pa.types.is_struct(kind):
        return [p for f in kind for p in _leaf_paths(f"{path}.{f.name}", f.type)]
    return [path]


def _any_dictionary(schema: pa.Schema) -> bool:
    """Whether a column of ``schema`` is dictionary-encoded, or holds such values (a map's
    keys and values handed over as codes)."""
    return any(_has_dictionary(f.type) for f in schema)


def _has_dictionary(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return True
    if pa.types.is_map(kind):
        return _has_dictionary(kind.key_type) or _has_dictionary(kind.item_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_dictionary(kind.value_type)
    if pa.types.is_struct(kind):
        return any(_has_dictionary(f.type) for f in kind)
    return False


def _by_day(data: pa.Table, column: str | None) -> Iterator[tuple[object, pa.Table]]:
    """(day, its rows) per day of ``column``, in the rows' order within a day. Rows already
    grouped by day (as the runners write them) are sliced, not copied; others are
    gathered once in day order."""
    import numpy as np

    if column is None:
        yield None, data
        return
    days = utc_days(data.column(column))
    numbers = pc.fill_null(days.cast(pa.int32()), np.iinfo(np.int32).min).to_numpy()
    if np.any(numbers[1:] < numbers[:-1]):
        order = np.argsort(numbers, kind="stable")
        data, numbers, days = data.take(pa.array(order)), numbers[order], days.take(order)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(numbers)) + 1))
    ends = np.concatenate((starts[1:], [len(numbers)]))
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        yield days[start].as_py(), data.slice(start, end - start)


def add_files(
    table: Table,
    paths: list[str],
    properties: dict[str, str],
    footers: Mapping[str, Footer] | None = None,
) -> list[DataFile]:
    """Register written files in ``table`` (a pyiceberg table) in one snapshot; return
    their ``DataFile``s as the snapshot lists them.

    pyiceberg's ``add_files``, except that a file whose :class:`Footer` is in ``footers``
    (the writer's metadata, kept since :func:`write_data_files`) is not opened again to
    read it back — about 3 ms of CPU a file, several files a micro-batch."""
    from pyiceberg.table import TableProperties

    from advertisex.lake.transaction import transaction

    footers = footers or {}
    with transaction(table) as tx:
        if tx.table_metadata.name_mapping() is None:  # as pyiceberg's: columns map by name
            mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
            tx.set_properties(properties={TableProperties.DEFAULT_NAME_MAPPING: mapping})
        with tx._append_snapshot_producer(properties) as append:
            added = [
                data_file(table, tx.table_metadata, path, footers.get(path))
                for path in sorted(paths)
            ]
            for added_file in added:
                append.append_data_file(added_file)
    return added


def data_file(table: Table, metadata: TableMetadata, path: str, footer: Footer | None) -> DataFile:
    """The ``DataFile`` pyiceberg's ``parquet_file_to_data_file`` makes of ``path``, from
    ``footer`` when given (the same metadata it would read back from the file)."""
    from pyiceberg.io.pyarrow import (
        data_file_statistics_from_parquet_metadata,
        parquet_file_to_data_file,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

    if footer is None:
        return parquet_file_to_data_file(table.io, metadata, path)
    schema = metadata.schema()
    stats_columns, column_mapping = _statistics_plan(
        metadata, footer.metadata.schema.to_arrow_schema()
    )
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=footer.metadata,
        stats_columns=stats_columns,
        parquet_column_mapping=column_mapping,
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=statistics.partition(metadata.spec(), schema),
        file_size_in_bytes=footer.size,
        sort_order_id=None,
        spec_id=metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )


# (table, schema id, format version, the file's columns, table properties) → what
# _statistics_plan found for them. Every micro-batch commits files of the same few
# schemas: checking each file's columns against the table and planning its statistics
# again was about a fifth of a commit's CPU (≈ 15 ms a file, pyiceberg's schema visitors).
_PLANS: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def _statistics_plan(metadata: TableMetadata, columns: pa.Schema) -> tuple[Any, Any]:
    """pyiceberg's check that a file's ``columns`` fit the table's current schema (raising as
    it does), then its statistics plan and column mapping for such files — computed once
    per table, schema, file columns (field ids included) and table properties."""
    from pyiceberg.io.pyarrow import (
        _check_pyarrow_schema_compatible,
        compute_statistics_plan,
        parquet_path_to_id_mapping,
    )

    key = (
        metadata.table_uuid,
        metadata.current_schema_id,
        metadata.format_version,
        columns.to_string(show_field_metadata=True, show_schema_metadata=False),
        tuple(sorted(metadata.properties.items())),
    )
    plan = _PLANS.get(key)
    if plan is None:
        schema = metadata.schema()
        _check_pyarrow_schema_compatible(schema, columns, format_version=metadata.format_version)
        plan = (
            compute_statistics_plan(schema, metadata.properties),
            parquet_path_to_id_mapping(schema),
        )
        if len(_PLANS) >= 256:  # many tables or schemas over a long run: start over
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def remove_files(urls: list[str], scale: ScaleSettings | None) -> None:
    """Delete data files no snapshot references (best effort: what is left, maintenance
    removes as orphans)."""
    for url in urls:
        filesystem, path = storage.resolve(url, scale)
        try:
            filesystem.delete_file(path)
        except OSError:
            pass
