"""Arrow across Spark: tables as IPC blobs in a binary column, small results to the driver.

Shared by the processing tasks (``advertisex.runners.spark_tasks``) and mart maintenance
(``advertisex.marts.spark``), so it lives below both; nothing here imports PySpark at module level, so
executors and tests without a JVM can use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def to_ipc(table: pa.Table) -> bytes:
    """``table`` as one Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()


def collect_arrow(frame: DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """Collect a (small) DataFrame to the driver as Arrow."""
    batches = frame._collect_as_arrow()
    if not batches:
        if schema is None:
            from pyspark.sql.pandas.types import to_arrow_schema

            schema = to_arrow_schema(frame.schema)
        return schema.empty_table()
    return pa.Table.from_batches(batches)
