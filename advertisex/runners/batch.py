"""One batch: segments of any sources in, per-table appends and its accounting out.

Pure with respect to storage: it is handed the framed segments and the keys already
committed, and returns what to commit. The embedded runner (and later the Spark
runner) does the reading and committing around it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels import standardize as std
from advertisex.kernels.dedupe import dedupe
from advertisex.kernels.split import split_rejected, to_quarantine, with_lineage
from advertisex.model.schemas import SOURCES, TABLES

STANDARDIZERS: dict[str, Callable[[pa.Table, std.Rules], pa.Table]] = {
    "impressions": std.standardize_impressions,
    "clicks": std.standardize_clicks,
    "bids": std.standardize_bids,
}


@dataclass
class SourceAccount:
    """What happened to every record of one source in one batch."""

    source: str
    files: int = 0
    bytes: int = 0
    records_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    filtered: int = 0
    duplicates: int = 0
    conflicts: int = 0
    by_table: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.records_in == self.accepted + self.quarantined + self.filtered + self.duplicates


@dataclass
class BatchOutput:
    appends: dict[str, pa.Table]
    accounts: dict[str, SourceAccount]


def table_rows(table_name: str, standardized: pa.Table) -> pa.Table:
    """The good standardized rows that belong to ``table_name`` (clicks feed two tables)."""
    if table_name == "curated.clicks":
        return standardized.filter(pc.equal(standardized.column("event_type"), "click"))
    if table_name == "curated.conversions":
        return standardized.filter(pc.equal(standardized.column("event_type"), "conversion"))
    return standardized


def process_source(
    source: str,
    frame: pa.Table,
    rules: std.Rules,
    batch_id: str,
    seen: Callable[[str, pa.Table], pa.Table | None],
) -> tuple[dict[str, pa.Table], SourceAccount]:
    """Standardize, validate, split and dedupe one source's framed records.

    ``seen(table_name, candidates)`` returns the already-committed keys that could
    collide with ``candidates`` (or None when there are none).
    """
    account = SourceAccount(source, records_in=frame.num_rows)
    constants = {"batch_id": batch_id}
    standardized = STANDARDIZERS[source](frame, rules)
    good, rejected = split_rejected(standardized)
    # ingest_time travels with each row from its segment; add it to the standardized rows.
    appends: dict[str, pa.Table] = {}
    quarantine = to_quarantine(_attach_ingest_time(rejected, frame), source, constants)
    account.quarantined = quarantine.num_rows
    appends["curated.quarantine"] = quarantine
    # Accepted rows no longer need their raw text; dropping it keeps later steps light.
    good = _attach_ingest_time(good.drop_columns(["raw", "frame_error", "reasons"]), frame)
    for table_name in SOURCES[source]:
        candidates = table_rows(table_name, good)
        result = dedupe(table_name, candidates, seen(table_name, candidates))
        schema = TABLES[table_name].schema
        rows = with_lineage(result.unique, constants)
        rows = rows.select(schema.names).cast(schema)
        appends[table_name] = rows.sort_by([(c, "ascending") for c in TABLES[table_name].sort_by])
        account.accepted += rows.num_rows
        account.duplicates += result.duplicates
        account.conflicts += result.conflicts
        account.by_table[table_name] = rows.num_rows
    return appends, account


def _attach_ingest_time(rows: pa.Table, frame: pa.Table) -> pa.Table:
    """Look up each row's ingest_time by its source file (constant per segment)."""
    if "ingest_time" in rows.column_names:
        return rows
    files = (
        frame.select(["source_file", "ingest_time"])
        .group_by("source_file")
        .aggregate([("ingest_time", "min")])
    )
    lookup = dict(
        zip(
            files.column("source_file").to_pylist(),
            files.column("ingest_time_min").to_pylist(),
            strict=True,
        )
    )
    types = pa.timestamp("us", tz="UTC")
    keys = pa.array(list(lookup), pa.string())
    index = pc.index_in(rows.column("source_file"), value_set=keys)
    times = pa.array([lookup[k] for k in keys.to_pylist()], types)
    return rows.append_column("ingest_time", pc.take(times, index))
