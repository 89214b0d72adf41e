"""Deduplicate by event key, within the batch and against keys already committed.

The first occurrence wins (by source file — arrival order — then position); every
later one is a duplicate. A duplicate whose payload hash differs from the kept
row's is a *conflict*: same id, different content. It is still dropped (the first
is kept) but counted apart so it can be investigated.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from advertisex.kernels import engine

# The key expression per curated table (bids are unique per exchange + auction id).
KEYS = {
    "curated.impressions": "impression_id",
    "curated.clicks": "event_id",
    "curated.conversions": "event_id",
    "curated.bid_requests": "coalesce(exchange, '') || '|' || auction_id",
}
# Columns a dedupe needs from already-committed rows.
SEEN_COLUMNS = {
    "curated.impressions": ("impression_id", "payload_hash"),
    "curated.clicks": ("event_id", "payload_hash"),
    "curated.conversions": ("event_id", "payload_hash"),
    "curated.bid_requests": ("exchange", "auction_id", "payload_hash"),
}


@dataclass(frozen=True)
class DedupeResult:
    unique: pa.Table
    duplicates: int
    conflicts: int


def dedupe(table_name: str, candidates: pa.Table, seen: pa.Table | None = None) -> DedupeResult:
    """Keep the first row per key not already in ``seen``; count the rest.

    >>> t = pa.table({"impression_id": ["a", "a", "b"], "payload_hash": ["x", "y", "z"],
    ...               "source_file": ["f"] * 3, "source_position": [1, 2, 3]})
    >>> r = dedupe("curated.impressions", t)
    >>> (r.unique.num_rows, r.duplicates, r.conflicts)
    (2, 1, 1)
    """
    if candidates.num_rows == 0:
        return DedupeResult(candidates, 0, 0)
    key = KEYS[table_name]
    seen_part = (
        f"LEFT JOIN (SELECT {key} AS k, any_value(payload_hash) AS seen_hash FROM seen GROUP BY 1) s "
        "ON s.k = r.k"
        if seen is not None
        else "LEFT JOIN (SELECT NULL::VARCHAR AS k, NULL::VARCHAR AS seen_hash) s ON false"
    )
    query = f"""
    WITH r AS (
      SELECT *, {key} AS k,
        row_number() OVER (PARTITION BY {key} ORDER BY source_file, source_position) AS rn,
        first_value(payload_hash) OVER (PARTITION BY {key} ORDER BY source_file, source_position) AS first_hash
      FROM candidates
    ), c AS (
      SELECT r.*, s.seen_hash,
        (r.rn > 1 OR s.seen_hash IS NOT NULL) AS is_dup,
        r.payload_hash <> coalesce(s.seen_hash, r.first_hash) AS differs
      FROM r {seen_part}
    )
    SELECT * EXCLUDE (k, rn, first_hash, seen_hash, differs), (is_dup AND differs) AS is_conflict
    FROM c
    ORDER BY source_file, source_position
    """
    tables = {"candidates": candidates}
    if seen is not None:
        tables["seen"] = seen
    marked = engine.run(query, **tables)
    import pyarrow.compute as pc

    is_dup = marked.column("is_dup")
    duplicates = pc.sum(pc.cast(is_dup, pa.int64())).as_py() or 0
    conflicts = pc.sum(pc.cast(marked.column("is_conflict"), pa.int64())).as_py() or 0
    unique = marked.filter(pc.invert(is_dup)).drop_columns(["is_dup", "is_conflict"])
    return DedupeResult(unique, duplicates, conflicts)
