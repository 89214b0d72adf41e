"""One source of one batch: framed records in, per-table appends and accounting out.

Pure with respect to storage: it is handed the framed records, the segment lineage
and a way to look up keys already committed, and returns what to commit. The
embedded runner (and later the Spark runner) does the reading and committing.

Wide data crosses the engine as few times as possible: standardize once; find
duplicates on (key, hash) only; then one select per table keeps the surviving rows,
joins their lineage and sorts them by campaign and time for the data files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels import engine
from advertisex.kernels import standardize as std
from advertisex.kernels.dedupe import find_duplicates, key_column
from advertisex.model.schemas import QUARANTINE, SOURCES, TABLES

STANDARDIZERS: dict[str, Callable[[pa.Table, std.Rules], pa.Table]] = {
    "impressions": std.standardize_impressions,
    "clicks": std.standardize_clicks,
    "bids": std.standardize_bids,
}

# Which standardized click rows feed which table.
_EVENT_TYPE = {"curated.clicks": "click", "curated.conversions": "conversion"}

Seen = Callable[[str, pa.Table], tuple[pa.Array, pa.Array] | None]


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


def process_source(
    source: str,
    frame: pa.Table,
    lineage: pa.Table,
    rules: std.Rules,
    batch_id: str,
    seen: Seen,
) -> tuple[dict[str, pa.Table], SourceAccount]:
    """Standardize, validate, dedupe one source's framed records into table appends.

    ``lineage`` maps the frame's ``segment`` index to source_file and ingest_time;
    ``seen(table_name, candidate_rows)`` returns committed (keys, hashes) that could
    collide with the candidates, or None.
    """
    standardized = STANDARDIZERS[source](frame, rules)
    account = SourceAccount(source, records_in=standardized.num_rows)
    rejected = pc.greater(pc.list_value_length(standardized.column("reasons")), 0).to_numpy(
        zero_copy_only=False
    )
    appends = {
        "curated.quarantine": quarantine_rows(
            standardized.filter(pa.array(rejected)), source, lineage, batch_id
        )
    }
    account.quarantined = int(rejected.sum())
    for table_name in SOURCES[source]:
        candidate = ~rejected
        if table_name in _EVENT_TYPE:
            candidate &= pc.fill_null(
                pc.equal(standardized.column("event_type"), _EVENT_TYPE[table_name]), False
            ).to_numpy(zero_copy_only=False)
        index = np.flatnonzero(candidate)
        candidates = standardized.select(_key_columns(table_name)).take(pa.array(index))
        committed = seen(table_name, candidates)
        found = find_duplicates(
            key_column(table_name, candidates),
            candidates.column("payload_hash"),
            *(committed or (None, None)),
        )
        keep = np.zeros(standardized.num_rows, dtype=bool)
        keep[index[~found.is_duplicate]] = True
        rows = accepted_rows(table_name, standardized, keep, lineage, batch_id)
        appends[table_name] = rows
        account.accepted += rows.num_rows
        account.duplicates += found.count
        account.conflicts += found.conflicts
        account.by_table[table_name] = rows.num_rows
    return appends, account


def _key_columns(table_name: str) -> list[str]:
    if table_name == "curated.bid_requests":
        return ["exchange", "auction_id", "payload_hash", "event_time"]
    if table_name == "curated.impressions":
        return ["impression_id", "payload_hash", "event_time"]
    return ["event_id", "payload_hash", "event_time"]


def accepted_rows(
    table_name: str, standardized: pa.Table, keep: np.ndarray, lineage: pa.Table, batch_id: str
) -> pa.Table:
    """The kept rows in the table's schema, with lineage, sorted as the table is."""
    spec = TABLES[table_name]
    columns = ", ".join(
        f'lineage."{c}"'
        if c in ("source_file", "ingest_time")
        else ("$batch_id AS batch_id" if c == "batch_id" else f'rows."{c}"')
        for c in spec.schema.names
    )
    order = ", ".join(f'rows."{c}"' for c in spec.sort_by)
    query = f"""
    SELECT {columns}
    FROM rows JOIN lineage USING (segment)
    WHERE rows.keep
    ORDER BY {order}
    """
    result = engine.run(
        query,
        {"batch_id": batch_id},
        rows=standardized.append_column("keep", pa.array(keep)),
        lineage=lineage,
    )
    return result.cast(spec.schema)


def quarantine_rows(rejected: pa.Table, source: str, lineage: pa.Table, batch_id: str) -> pa.Table:
    """Rejected rows → ``curated.quarantine``: raw text, every reason, where it came from."""
    query = """
    SELECT $source AS source, reasons, rtrim(coalesce(raw, ''), chr(13) || chr(10)) AS raw,
      frame_error AS detail, event_time, lineage.ingest_time, lineage.source_file,
      source_position, $batch_id AS batch_id
    FROM rejected JOIN lineage USING (segment)
    ORDER BY segment, source_position
    """
    result = engine.run(
        query,
        {"source": source, "batch_id": batch_id},
        rejected=rejected.select(
            ["reasons", "raw", "frame_error", "event_time", "segment", "source_position"]
        ),
        lineage=lineage,
    )
    return result.select(QUARANTINE.names).cast(QUARANTINE)
