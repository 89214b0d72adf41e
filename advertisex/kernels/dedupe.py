"""Deduplicate by event key, within the batch and against keys already committed.

The first occurrence wins — rows arrive in arrival order (segment, then position),
so "first" is simply the lowest row index — and every later one is a duplicate. A
duplicate whose payload hash differs from the kept row's is a *conflict*: same id,
different content. It is still dropped (the first is kept) but counted apart.

Only the key and the payload hash go through the engine (a hash aggregate, no sort),
so wide rows and their raw text are never shuffled; the result is a keep-mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels import engine

# Columns a dedupe needs from already-committed rows, per curated table.
SEEN_COLUMNS = {
    "curated.impressions": ("impression_id", "payload_hash"),
    "curated.clicks": ("event_id", "payload_hash"),
    "curated.conversions": ("event_id", "payload_hash"),
    "curated.bid_requests": ("exchange", "auction_id", "payload_hash"),
}


def key_column(table_name: str, rows: pa.Table) -> pa.ChunkedArray | pa.Array:
    """The dedupe key per row; bids are unique per exchange + auction id."""
    if table_name == "curated.bid_requests":
        exchange = pc.fill_null(rows.column("exchange"), "")
        return pc.binary_join_element_wise(exchange, rows.column("auction_id"), "|")
    return rows.column(SEEN_COLUMNS[table_name][0])


@dataclass(frozen=True)
class DedupeResult:
    unique: pa.Table
    duplicates: int
    conflicts: int


_QUERY = """
WITH firsts AS (
  SELECT k, min(i) AS first_i, arg_min(h, i) AS first_h FROM keyed GROUP BY k
)
SELECT keyed.i,
  (keyed.i <> firsts.first_i OR s.seen_h IS NOT NULL) AS is_dup,
  keyed.h <> coalesce(s.seen_h, firsts.first_h) AS differs
FROM keyed
JOIN firsts USING (k)
LEFT JOIN (SELECT k, any_value(h) AS seen_h FROM seen GROUP BY k) s USING (k)
"""


def dedupe(table_name: str, candidates: pa.Table, seen: pa.Table | None = None) -> DedupeResult:
    """Keep the first row per key not already in ``seen``; count the rest.

    >>> t = pa.table({"impression_id": ["a", "a", "b"], "payload_hash": ["x", "y", "z"]})
    >>> r = dedupe("curated.impressions", t)
    >>> (r.unique.num_rows, r.duplicates, r.conflicts)
    (2, 1, 1)
    """
    n = candidates.num_rows
    if n == 0:
        return DedupeResult(candidates, 0, 0)
    keyed = pa.table(
        {
            "k": key_column(table_name, candidates),
            "h": candidates.column("payload_hash"),
            "i": pa.array(np.arange(n, dtype=np.int64)),
        }
    )
    if seen is None or seen.num_rows == 0:
        seen_keys = pa.table({"k": pa.array([], pa.string()), "h": pa.array([], pa.string())})
    else:
        seen_keys = pa.table({"k": key_column(table_name, seen), "h": seen.column("payload_hash")})
    marked = engine.run(_QUERY, keyed=keyed, seen=seen_keys)
    index = marked.column("i").to_numpy()
    is_dup = np.zeros(n, dtype=bool)
    is_dup[index] = marked.column("is_dup").to_numpy(zero_copy_only=False)
    conflict = np.zeros(n, dtype=bool)
    conflict[index] = pc.fill_null(marked.column("differs"), False).to_numpy(zero_copy_only=False)
    conflicts = int((is_dup & conflict).sum())
    unique = candidates.filter(pa.array(~is_dup)) if is_dup.any() else candidates
    return DedupeResult(unique, int(is_dup.sum()), conflicts)
