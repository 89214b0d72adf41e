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

from advertisex.util import engine

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
class Duplicates:
    """Per candidate row: is it a repeat of an earlier or committed key, and is it a conflict."""

    is_duplicate: np.ndarray
    is_conflict: np.ndarray

    @property
    def count(self) -> int:
        return int(self.is_duplicate.sum())

    @property
    def conflicts(self) -> int:
        return int((self.is_duplicate & self.is_conflict).sum())


_QUERY = """
WITH firsts AS (
  SELECT k, min(i) AS first_i, arg_min(h, i) AS first_h FROM keyed GROUP BY k
)
SELECT keyed.i,
  (keyed.i <> firsts.first_i OR s.seen_h IS NOT NULL) AS is_dup,
  keyed.h <> coalesce(s.seen_h, firsts.first_h) AS differs
FROM keyed
JOIN firsts USING (k)
LEFT JOIN (SELECT k, h AS seen_h FROM seen) s USING (k)
"""


def find_duplicates(
    keys: pa.Array | pa.ChunkedArray,
    hashes: pa.Array | pa.ChunkedArray,
    seen_keys: pa.Array | pa.ChunkedArray | None = None,
    seen_hashes: pa.Array | pa.ChunkedArray | None = None,
) -> Duplicates:
    """Mark repeats among ``keys`` (in arrival order) and of keys already committed.

    ``seen_keys`` are committed rows, hence unique; the engine joins the batch's keys
    against them (hash table on the batch side, one probe per committed key), so the
    only state is the committed keys of the dedupe horizon, read per batch.

    >>> d = find_duplicates(pa.array(["a", "a", "b"]), pa.array(["x", "y", "z"]))
    >>> d.is_duplicate.tolist(), d.count, d.conflicts
    ([False, True, False], 1, 1)
    """
    n = len(keys)
    if n == 0:
        return Duplicates(np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    keyed = pa.table({"k": keys, "h": hashes, "i": pa.array(np.arange(n, dtype=np.int64))})
    if seen_keys is None or seen_hashes is None:
        seen_keys, seen_hashes = pa.array([], pa.string()), pa.array([], pa.string())
    seen = pa.table({"k": seen_keys, "h": seen_hashes})
    marked = engine.run(_QUERY, keyed=keyed, seen=seen)
    index = marked.column("i").to_numpy()
    is_dup = np.zeros(n, dtype=bool)
    is_dup[index] = marked.column("is_dup").to_numpy(zero_copy_only=False)
    differs = np.zeros(n, dtype=bool)
    differs[index] = pc.fill_null(marked.column("differs"), False).to_numpy(zero_copy_only=False)
    return Duplicates(is_dup, differs)
