"""Split standardized rows: accepted rows in the table's schema, the rest as quarantine rows.

Every input row goes to exactly one side, which is what keeps batch accounting exact.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.model.schemas import QUARANTINE


def has_reasons(standardized: pa.Table) -> pa.ChunkedArray:
    return pc.greater(pc.list_value_length(standardized.column("reasons")), 0)


def split_rejected(standardized: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(good rows, rejected rows), both still in the standardized shape."""
    rejected = has_reasons(standardized)
    if not pc.any(rejected).as_py():
        return standardized, standardized.schema.empty_table()
    return standardized.filter(pc.invert(rejected)), standardized.filter(rejected)


def to_quarantine(rejected: pa.Table, source: str, lineage: Mapping[str, object]) -> pa.Table:
    """Rejected standardized rows → ``curated.quarantine`` rows with their raw text and reasons."""
    n = rejected.num_rows
    raw = pc.utf8_rtrim(pc.fill_null(rejected.column("raw"), ""), characters="\r\n")
    columns = {
        "source": pa.array([source] * n, pa.string()),
        "reasons": rejected.column("reasons").cast(pa.list_(pa.string())),
        "raw": raw,
        "detail": rejected.column("frame_error"),
        "event_time": rejected.column("event_time"),
        "source_file": rejected.column("source_file"),
        "source_position": rejected.column("source_position"),
        "ingest_time": rejected.column("ingest_time"),
    }
    table = pa.table(columns)
    return with_lineage(table, lineage).select(QUARANTINE.names).cast(QUARANTINE)


def with_lineage(table: pa.Table, constants: Mapping[str, object]) -> pa.Table:
    """Add constant columns (ingest_time, batch_id) to every row."""
    for name, value in constants.items():
        scalar = value if isinstance(value, pa.Scalar) else pa.scalar(value)
        table = table.append_column(name, pa.array([scalar.as_py()] * table.num_rows, scalar.type))
    return table
