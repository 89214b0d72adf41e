"""Bid requests: one won auction behind every programmatic impression, plus lost ones.

A won request carries the impression's ``auction_id`` and happens a few milliseconds to a
few hundred milliseconds before it; its bid covers the clearing price, which covers the
floor. Lost requests (outbid, or no bid at all) fill the stream up to its share of traffic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advertisex.synth import catalog as cat
from advertisex.synth.clock import Window, sample_times
from advertisex.synth.ids import hex_ids
from advertisex.synth.impressions import pick_creatives
from advertisex.synth.world import N_CAMPAIGNS, World, interest_combos

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

NO_BID_SHARE = 0.45  # of lost requests, those the bidder passed on (bid_price null)

BID_COLUMNS = [
    "auction_id",
    "event_ms",
    "user_id",
    "exchange",
    "site_domain",
    "device_type",
    "country",
    "floor_price",
    "age",
    "gender",
    "interests",
    "bid_price",
    "campaign_id",
    "ad_creative_id",
]


def _user_fields(world: World, user: np.ndarray) -> dict[str, pl.Series]:
    """Device, country and targeting profile of (human) users."""
    import polars as pl

    def gather(vocab: list[str], index: np.ndarray) -> pl.Series:
        return pl.Series(vocab, dtype=pl.String).gather(index)

    return {
        "user_id": world.user_id_texts.gather(user),
        "device_type": gather(cat.DEVICE_TYPES, world.user_device[user]),
        "country": gather(cat.COUNTRIES, world.user_country[user]),
        "age": gather(cat.AGE_BANDS, world.user_age[user]),
        "gender": gather(cat.GENDERS, world.user_gender[user]),
        "interests": gather(interest_combos(), world.user_interests[user]),
    }


def _exchanges(rng: np.random.Generator, n: int) -> pl.Series:
    import polars as pl

    return pl.Series(cat.EXCHANGES).gather(rng.choice(len(cat.EXCHANGES), n, p=cat.EXCHANGE_SHARE))


def make_bids(
    rng: np.random.Generator,
    world: World,
    window: Window,
    impressions: pl.DataFrame,
    n_bids: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Mark ~40 % of ``n_bids`` worth of human impressions programmatic; build all bids.

    Returns the impressions with ``auction_id`` set on programmatic ones, and ``n_bids``
    unique valid bid requests (won ones first; files are ordered later, by arrival).
    """
    import numpy as np
    import polars as pl

    human = np.flatnonzero(~impressions["is_bot"].to_numpy())
    n_won = min(round(0.4 * n_bids), len(human))
    n_lost = n_bids - n_won
    won_rows = np.sort(rng.choice(human, n_won, replace=False))
    auction_ids = hex_ids(rng, n_bids, "auc-")

    id_at_row = pl.repeat(None, len(impressions), dtype=pl.String, eager=True)
    id_at_row = id_at_row.scatter(won_rows, auction_ids[:n_won])
    impressions = impressions.with_columns(auction_id=id_at_row)

    won = impressions[won_rows]
    clearing_cpm = won["cost"].to_numpy() * 1000.0
    # Ceil/floor to 4 decimals so rounding can never break floor <= clearing <= bid.
    bid_price = np.ceil(clearing_cpm * rng.uniform(1.0, 1.6, n_won) * 1e4) / 1e4
    floor_price = np.floor(clearing_cpm * rng.uniform(0.3, 0.95, n_won) * 1e4) / 1e4
    lead_ms = rng.integers(5, 400, n_won)
    won_bids = pl.DataFrame(
        {
            "auction_id": auction_ids[:n_won],
            "event_ms": won["event_ms"].to_numpy() - lead_ms,
            **_user_fields(world, won["_user"].to_numpy()),
            "exchange": _exchanges(rng, n_won),
            "site_domain": won["_host"],
            "floor_price": floor_price,
            "bid_price": bid_price,
            "campaign_id": won["campaign_id"],
            "ad_creative_id": won["ad_creative_id"],
            "_campaign": won["_campaign"],
        }
    )

    # Lost auctions: the bidder was outbid, or passed (no bid, no campaign).
    user = rng.choice(world.n_users, n_lost, p=world.user_weight)
    campaign = rng.choice(N_CAMPAIGNS, n_lost, p=world.campaign_weight)
    creative = pick_creatives(rng, world, campaign)
    floor = np.round(rng.uniform(0.2, 3.0, n_lost), 4)
    passed = rng.random(n_lost) < NO_BID_SHARE
    offered = np.round(floor * rng.uniform(1.0, 1.5, n_lost), 4)
    site = rng.choice(len(world.site_hosts), n_lost, p=world.site_weight)
    lost_bids = pl.DataFrame(
        {
            "auction_id": auction_ids[n_won:],
            "event_ms": sample_times(rng, window, n_lost),
            **_user_fields(world, user),
            "exchange": _exchanges(rng, n_lost),
            "site_domain": pl.Series(world.site_hosts).gather(site),
            "floor_price": floor,
            "bid_price": pl.Series(offered).scatter(np.flatnonzero(passed), None),
            "campaign_id": pl.Series(world.campaign_ids).gather(campaign),
            "ad_creative_id": pl.Series(world.creative_ids).gather(creative),
            "_campaign": campaign,
        }
    ).with_columns(
        campaign_id=pl.when(pl.col("bid_price").is_null()).then(None).otherwise("campaign_id"),
        ad_creative_id=pl.when(pl.col("bid_price").is_null())
        .then(None)
        .otherwise("ad_creative_id"),
    )
    bids = (
        pl.concat([won_bids, lost_bids], how="diagonal_relaxed")
        .select(*BID_COLUMNS, "_campaign")
        .with_columns(is_bot=pl.lit(False), table=pl.lit("bid_requests"))
    )
    return impressions, bids
