"""Small curated-table builders shared by the mart tests: rows as dicts, other columns filled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from advertisex.model.schemas import TABLES

T0 = datetime(2026, 11, 20, tzinfo=UTC)
FILLER: dict[str, Any] = {
    "website": "https://example.com/a",
    "payload_hash": "h",
    "ingest_time": T0,
    "source_file": "f",
    "source_position": 0,
    "batch_id": "b",
}


def table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    """A table with the full curated schema of ``name`` holding ``rows``."""
    schema = TABLES[name].schema
    columns = {}
    for f in schema:
        values = [row.get(f.name, _filler(f.name, row)) for row in rows]
        columns[f.name] = pa.array(values, f.type)
    return pa.table(columns, schema=schema)


def _filler(name: str, row: dict[str, Any]) -> Any:
    if name == "event_date":  # derived columns of the enrichment step
        return row["event_time"].date()
    if name == "event_hour":
        return row["event_time"].hour
    return FILLER.get(name)


def minutes(m: int) -> datetime:
    return T0 + timedelta(minutes=m)
