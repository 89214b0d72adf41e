"""Clicks and conversions as CSV rows: rendering, conflicting re-sends, malformed rows.

polars' CSV writer renders the rows (quoting whatever needs it); rows stay separate lines
so the landing step can interleave them by arrival time and add malformed ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advertisex.synth.clock import iso_z
from advertisex.synth.responses import money

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

CLICK_HEADER = [
    "event_id",
    "timestamp",
    "user_id",
    "campaign_id",
    "ad_creative_id",
    "impression_id",
    "event_type",
    "conversion_type",
    "conversion_value",
    "currency",
]
MALFORMED_KINDS = ["too_few_columns", "bogus_event_type", "empty_timestamp", "empty_user_id"]


def header_line() -> str:
    return ",".join(CLICK_HEADER)


def render_responses(frame: pl.DataFrame) -> pl.Series:
    """One CSV row per frame row (no header), in the frame's order; nulls are empty."""
    import polars as pl

    table = frame.with_columns(timestamp=iso_z(pl.col("event_ms"))).select(CLICK_HEADER)
    text = table.write_csv(include_header=False, null_value="", line_terminator="\n")
    lines = text.split("\n")[:-1] if text else []
    return pl.Series("line", lines, dtype=pl.String)


def conflicting_responses(rng: np.random.Generator, frame: pl.DataFrame) -> pl.DataFrame:
    """Same event ids, different payload: a click re-sent with another time, a conversion
    re-sent with another value."""
    import polars as pl

    n = len(frame)
    shift = pl.Series(rng.integers(1_000, 30_000, n))
    extra_cents = pl.Series(rng.integers(100, 1_000, n))
    is_click = pl.col("table") == "clicks"
    cents = (pl.col("conversion_value").cast(pl.Float64) * 100).round().cast(pl.Int64)
    return frame.with_columns(
        event_ms=pl.when(is_click).then(pl.col("event_ms") + shift).otherwise("event_ms"),
        conversion_value=pl.when(is_click)
        .then("conversion_value")
        .otherwise(money(cents + extra_cents)),
    )


def malformed_responses(rng: np.random.Generator, templates: pl.DataFrame) -> pl.Series:
    """One broken row per template row, each of a random MALFORMED_KINDS kind."""
    import polars as pl

    kind = pl.Series(rng.integers(0, len(MALFORMED_KINDS), len(templates)))
    broken = templates.with_columns(_bad=kind).with_columns(
        event_type=pl.when(pl.col("_bad") == 1).then(pl.lit("bogus")).otherwise("event_type"),
        event_ms=pl.when(pl.col("_bad") == 2).then(None).otherwise("event_ms"),
        user_id=pl.when(pl.col("_bad") == 3).then(None).otherwise("user_id"),
    )
    lines = render_responses(broken)
    # Too few columns: the first six fields only, so the row can't line up with the header.
    short = lines.str.split(",").list.head(6).list.join(",")
    return pl.select(pl.when(kind == 0).then(short).otherwise(lines)).to_series().alias("line")
