"""Clicks that follow impressions, and conversions that follow clicks.

Both land in the same CSV source, so they come back as one frame sorted by time whose
``table`` column says which curated table each row belongs to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from advertisex.synth import catalog as cat
from advertisex.synth.clock import HOUR_MS, Window
from advertisex.synth.ids import hex_ids
from advertisex.synth.world import BOT_CTR, World

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

CLICK_DELAY_MEDIAN_MS = 20_000  # people click within seconds to minutes
CONVERSION_DELAY_MEDIAN_MS = 3 * HOUR_MS  # and convert hours to days later
UNLINKED_CLICK_SHARE = 0.30  # clicks without impression_id exercise user+campaign matching
GOAL_SHARE = 0.7  # conversions of a campaign's own goal type; the rest are other kinds

RESPONSE_COLUMNS = [
    "event_id",
    "event_ms",
    "user_id",
    "campaign_id",
    "ad_creative_id",
    "impression_id",
    "event_type",
    "conversion_type",
    "conversion_value",
    "currency",
    "is_bot",
    "table",
    "_campaign",
]


def make_clicks(
    rng: np.random.Generator, world: World, window: Window, impressions: pl.DataFrame
) -> pl.DataFrame:
    """Clicks on ``impressions`` at each creative's CTR; later than the window: dropped."""
    import numpy as np
    import polars as pl

    creative = impressions["_creative"].to_numpy()
    is_bot = impressions["is_bot"].to_numpy()
    ctr = np.where(is_bot, BOT_CTR, world.creative_ctr[creative])
    clicked = rng.random(len(impressions)) < ctr
    delay = np.maximum(500, rng.lognormal(np.log(CLICK_DELAY_MEDIAN_MS), 1.0, int(clicked.sum())))
    source = impressions.filter(pl.Series(clicked))
    event_ms = source["event_ms"].to_numpy() + delay.astype(np.int64)
    linked = rng.random(len(source)) >= UNLINKED_CLICK_SHARE
    keep = event_ms < window.end_ms
    return (
        source.with_columns(
            event_ms=pl.Series(event_ms),
            impression_id=pl.when(pl.Series(linked)).then("impression_id"),
        )
        .filter(pl.Series(keep))
        .with_columns(
            event_type=pl.lit("click"),
            conversion_type=pl.lit(None, dtype=pl.String),
            conversion_value=pl.lit(None, dtype=pl.String),
            currency=pl.lit(None, dtype=pl.String),
            table=pl.lit("clicks"),
            event_id=pl.lit(None, dtype=pl.String),
        )
    )


def make_conversions(
    rng: np.random.Generator, world: World, window: Window, clicks: pl.DataFrame
) -> pl.DataFrame:
    """Conversions after human clicks at each campaign's conversion rate."""
    import numpy as np
    import polars as pl

    campaign = clicks["_campaign"].to_numpy()
    human = ~clicks["is_bot"].to_numpy()
    converted = human & (rng.random(len(clicks)) < world.campaign_cvr[campaign])
    source = clicks.filter(pl.Series(converted))
    n = len(source)
    delay = np.maximum(60_000, rng.lognormal(np.log(CONVERSION_DELAY_MEDIAN_MS), 1.2, n))
    event_ms = source["event_ms"].to_numpy() + delay.astype(np.int64)

    goal = world.campaign_goal[source["_campaign"].to_numpy()]
    kind = np.where(rng.random(n) < GOAL_SHARE, goal, rng.integers(0, len(cat.CONVERSION_TYPES), n))
    purchase = cat.CONVERSION_TYPES.index("purchase")
    lead = cat.CONVERSION_TYPES.index("lead")
    value = np.where(
        kind == purchase,
        np.clip(rng.lognormal(np.log(45.0), 0.8, n), 1.5, 2000.0),
        # Leads carry a small nominal value half the time; the other kinds carry none.
        np.where((kind == lead) & (rng.random(n) < 0.5), rng.uniform(1.0, 10.0, n), 0.0),
    )
    currency = world.campaign_currency[source["_campaign"].to_numpy()]
    keep = event_ms < window.end_ms
    return source.with_columns(
        event_ms=pl.Series(event_ms),
        impression_id=pl.lit(None, dtype=pl.String),
        event_type=pl.lit("conversion"),
        conversion_type=pl.Series(cat.CONVERSION_TYPES).gather(kind),
        conversion_value=money(pl.Series(np.round(value * 100).astype(np.int64))),
        currency=pl.Series(cat.CURRENCIES).gather(currency),
        table=pl.lit("conversions"),
    ).filter(pl.Series(keep))


def make_responses(
    rng: np.random.Generator, world: World, window: Window, impressions: pl.DataFrame
) -> pl.DataFrame:
    """Clicks and conversions together, sorted by event time, with fresh event ids."""
    import polars as pl

    clicks = make_clicks(rng, world, window, impressions)
    conversions = make_conversions(rng, world, window, clicks)
    both = pl.concat(
        [
            clicks.select(RESPONSE_COLUMNS),
            conversions.select(RESPONSE_COLUMNS),
        ]
    ).sort("event_ms", maintain_order=True)
    # One draw of hex digits for both kinds keeps every id distinct; the prefix says which.
    digits = hex_ids(rng, len(both), "")
    prefix = pl.when(pl.col("table") == "clicks").then(pl.lit("clk-")).otherwise(pl.lit("cnv-"))
    return both.with_columns(event_id=prefix + digits)


def money(cents: Any) -> Any:
    """``12.30`` from integer cents (a polars Series or Expr): two decimals, as exported."""
    import polars as pl

    return (cents // 100).cast(pl.String) + "." + (cents % 100).cast(pl.String).str.zfill(2)
