"""Impressions as NDJSON lines: rendering, conflicting re-sends, and malformed lines.

Lines are encoded by polars' ``struct.json_encode`` (native, multi-threaded): building a
Python dict per row for orjson costs ~20 µs a row on this class of machine, polars ~1.5 µs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from advertisex.model import contracts
from advertisex.synth.clock import TS_EPOCH_MS, iso_by_kind, iso_z

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

# The contract's fields in its order; auction_id is written only for programmatic impressions.
IMPRESSION_FIELDS = [f for f in contracts.IMPRESSION_FIELDS if f != "auction_id"]
MALFORMED_KINDS = ["cut_line", "array", "number", "no_user_id", "not_a_time", "year_3000"]


def _fields(timestamp: pl.Expr, *, without: str | None = None) -> list[pl.Expr]:
    import polars as pl

    return [
        timestamp.alias(name) if name == "timestamp" else pl.col(name)
        for name in IMPRESSION_FIELDS
        if name != without
    ]


def render_impressions(frame: pl.DataFrame, keep: list[str]) -> pl.DataFrame:
    """One JSON object per row in column ``line``, next to the ``keep`` columns.

    ``auction_id`` appears only on programmatic impressions (the key is omitted, not
    null, otherwise), and the timestamp is text or epoch milliseconds by ``ts_kind``;
    JSON columns can't change type, so each combination is encoded separately. Rows come
    back grouped by combination: callers order them by their ``keep`` columns.
    """
    import polars as pl

    slim = frame.select(
        *keep,
        *(name for name in IMPRESSION_FIELDS if name != "timestamp"),
        "event_ms",
        "auction_id",
        _text=iso_by_kind(pl.col("event_ms"), pl.col("ts_kind")),
        _epoch=pl.col("ts_kind") == TS_EPOCH_MS,
        _programmatic=pl.col("auction_id").is_not_null(),
    )
    groups = slim.partition_by("_programmatic", "_epoch", as_dict=True, include_key=False)
    parts = []
    for programmatic in (False, True):
        for epoch in (False, True):
            group = groups.get((programmatic, epoch))
            if group is None:
                continue
            fields = _fields(pl.col("event_ms") if epoch else pl.col("_text"))
            if programmatic:
                fields.append(pl.col("auction_id"))
            parts.append(group.select(*keep, line=pl.struct(fields).struct.json_encode()))
    if not parts:  # no impressions at all
        return slim.select(*keep, line=pl.lit("", dtype=pl.String))
    return pl.concat(parts)


def conflicting_impressions(rng: np.random.Generator, frame: pl.DataFrame) -> pl.DataFrame:
    """Same impression ids, different price: a re-send the ad server re-priced."""
    import numpy as np
    import polars as pl

    markup = rng.uniform(1.1, 1.6, len(frame))
    # +1e-6 so even the cheapest impression's price visibly changes after rounding.
    cost = np.round(frame["cost"].to_numpy() * markup + 1e-6, 6)
    return frame.with_columns(cost=pl.Series(cost))


def malformed_impressions(rng: np.random.Generator, templates: pl.DataFrame) -> pl.Series:
    """One broken line per template row, each of a random MALFORMED_KINDS kind.

    Every kind is rejected by any sane validator: invalid JSON, a JSON value that is not
    an object, an object without ``user_id``, or an unusable timestamp. Each line carries
    the template's fresh id (or a distinct number), so no two are alike.
    """
    import polars as pl

    kind = pl.Series(rng.integers(0, len(MALFORMED_KINDS), len(templates)))
    stamp = iso_z(pl.col("event_ms"))
    full = pl.struct(_fields(stamp)).struct.json_encode()
    # A cut line: the first half of the object, which can never parse as JSON.
    cut = full.str.slice(0, full.str.len_chars() // 2)
    array = pl.concat_str(pl.lit('["'), pl.col("impression_id"), pl.lit('"]'))
    number = (pl.col("event_ms") * 1000 + pl.int_range(pl.len())).cast(pl.String)
    no_user = pl.struct(_fields(stamp, without="user_id")).struct.json_encode()
    not_a_time = pl.struct(_fields(pl.lit("not-a-time"))).struct.json_encode()
    year_3000 = pl.struct(_fields(pl.lit("3000") + stamp.str.slice(4))).struct.json_encode()
    variants = [cut, array, number, no_user, not_a_time, year_3000]
    expr: Any = pl.when(pl.col("_bad") == 0).then(variants[0])
    for index, variant in enumerate(variants[1:], start=1):
        expr = expr.when(pl.col("_bad") == index).then(variant)
    return templates.with_columns(_bad=kind).select(line=expr)["line"]
