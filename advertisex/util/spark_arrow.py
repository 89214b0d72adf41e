"""Arrow across Spark: tables as IPC blobs in a binary column, small results to the driver.

Shared by the processing tasks (``advertisex.runners.spark_tasks``) and mart maintenance
(``advertisex.marts.spark``), so it lives below both; nothing here imports PySpark at module level, so
executors and tests without a JVM can use it.

Rows that must meet by key on one executor (every occurrence of an event id, every event
of a user) travel as :func:`bucketed` blobs: Spark shuffles a few rows of a few megabytes
each instead of millions of narrow ones, which it would convert one by one between Arrow
and its own rows on both sides of the shuffle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa

from advertisex.util import storage
from advertisex.util.buckets import split as buckets_of

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from advertisex.config import ScaleSettings


# Spark DDL of bucketed blobs, and the Arrow schema executors build them with: ``tag`` says
# what the rows are (an input of a mart kernel, a curated table's dedupe keys).
BLOBS = "bucket int, tag string, blob binary"
BLOBS_SCHEMA = pa.schema([("bucket", pa.int32()), ("tag", pa.string()), ("blob", pa.binary())])


def to_ipc(table: pa.Table) -> bytes:
    """``table`` as one Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()


def write_scratch(table: pa.Table, url: str, scale: ScaleSettings | None) -> None:
    """``table`` as an Arrow IPC file at ``url`` (a folder path or an object-store URL).

    LZ4-compressed on an object store (a third of the bytes over the network), plain on a
    local disk, where compressing and decompressing cost more CPU than the copy they save.
    """
    filesystem, path = storage.resolve(url, scale)
    remote = storage.is_remote(url)
    if not remote:
        filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    options = pa.ipc.IpcWriteOptions(compression="lz4" if remote else None)
    with (
        filesystem.open_output_stream(path) as sink,
        pa.ipc.new_file(sink, table.schema, options=options) as writer,
    ):
        writer.write_table(table)


def remove_stale_scratch(
    root: str, scale: ScaleSettings | None, older_than: timedelta, now: datetime
) -> list[str]:
    """Delete the batches' scratch folders under ``root`` in which nothing is newer than
    ``older_than``: a crashed batch's, when the batch was run again under another id (more
    segments were pending by then) and so never removed it. The folders deleted.

    The margin is the orphan files' (``maintenance.orphan_min_age_minutes``): a processor on
    another machine that shares the warehouse keeps its batch's scratch fresh meanwhile."""
    import pyarrow.fs as pafs

    filesystem, base = storage.resolve(root, scale)
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    newest: dict[str, datetime] = {}
    prefix = base.rstrip("/") + "/"
    for info in filesystem.get_file_info(selector):
        folder = info.path.removeprefix(prefix).split("/", 1)[0]
        modified = datetime.fromtimestamp((info.mtime_ns or 0) / 1e9, UTC)
        newest[folder] = max(newest.get(folder, modified), modified)
    stale = [folder for folder, at in sorted(newest.items()) if now - at > older_than]
    for folder in stale:
        with contextlib.suppress(FileNotFoundError):
            filesystem.delete_dir(prefix + folder)
    return stale


def read_scratch(url: str, scale: ScaleSettings | None) -> pa.Table:
    """The table :func:`write_scratch` wrote at ``url``."""
    filesystem, path = storage.resolve(url, scale)
    with filesystem.open_input_file(path) as source:
        return pa.ipc.open_file(source).read_all()


def remove_scratch(url: str, scale: ScaleSettings | None) -> None:
    """Delete the scratch folder ``url`` and everything in it (nothing if it is not there)."""
    filesystem, path = storage.resolve(url, scale)
    with contextlib.suppress(FileNotFoundError):
        filesystem.delete_dir(path)


def collect_arrow(frame: DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """Collect a (small) DataFrame to the driver as Arrow."""
    batches = frame._collect_as_arrow()
    if not batches:
        if schema is None:
            from pyspark.sql.pandas.types import to_arrow_schema

            schema = to_arrow_schema(frame.schema)
        return schema.empty_table()
    return pa.Table.from_batches(batches)


def bucketed(rows: pa.Table, key: str, buckets: int) -> Iterator[tuple[int, bytes]]:
    """``rows`` cut by a stable hash of ``key`` into at most ``buckets`` IPC blobs
    (:func:`advertisex.util.buckets.split`): the same key lands in the same bucket in every
    process, which is all partitioning needs."""
    for number, part in buckets_of(rows, key, buckets):
        yield number, to_ipc(part)


def blob_batch(bucket: int, tag: str, blob: bytes) -> pa.RecordBatch:
    """One row of :data:`BLOBS`."""
    return pa.RecordBatch.from_arrays(
        [pa.array([bucket], pa.int32()), pa.array([tag]), pa.array([blob], pa.binary())],
        schema=BLOBS_SCHEMA,
    )
