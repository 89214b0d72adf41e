"""Unique valid impressions: who saw which creative, where, when, and at what price.

Returns one polars frame with the payload columns written to NDJSON plus ``_``-prefixed
index columns (user, campaign, creative, site) that later stages use to derive clicks and
bid requests consistently with the impression.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advertisex.synth import catalog as cat
from advertisex.synth.clock import TS_KIND_SHARE, Window, sample_times
from advertisex.synth.ids import hex_ids
from advertisex.synth.world import N_BOT_USERS, N_CAMPAIGNS, World, agents

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


def pick_creatives(rng: np.random.Generator, world: World, campaign: np.ndarray) -> np.ndarray:
    """A creative of each given campaign, by the creatives' traffic weights.

    Creatives of one campaign are contiguous and their weights sum to 1, so the running
    total crosses ``campaign + u`` exactly inside that campaign's block.
    """
    import numpy as np

    cumulative = np.cumsum(world.creative_weight)
    chosen = np.searchsorted(cumulative, campaign + rng.random(len(campaign)), side="right")
    # Guard against float round-off at block edges: each campaign's block of creatives,
    # found once per campaign and looked up per event.
    starts = np.searchsorted(world.creative_campaign, np.arange(len(world.campaign_weight) + 1))
    return np.clip(chosen, starts[campaign], starts[campaign + 1] - 1)


def pick_placements(rng: np.random.Generator, world: World, creative: np.ndarray) -> np.ndarray:
    """A placement that fits each creative's format (videos play pre-roll, natives in-feed)."""
    import numpy as np

    fmt = world.creative_format[creative]
    placement = np.empty(len(creative), dtype=np.int64)
    for f, name in enumerate(cat.FORMATS):
        allowed = np.asarray(cat.FORMAT_PLACEMENTS[name])
        mask = fmt == f
        placement[mask] = allowed[rng.integers(0, len(allowed), int(mask.sum()))]
    return placement


def make_impressions(
    rng: np.random.Generator, world: World, window: Window, n: int, bot_rate: float
) -> pl.DataFrame:
    """``n`` unique valid impressions sorted by time, ``bot_rate`` of them from crawlers."""
    import numpy as np
    import polars as pl

    n_bot = min(n, round(bot_rate * n))
    n_human = n - n_bot
    # Programmatic impressions need room for their bid a few hundred ms earlier.
    human_ms = sample_times(rng, window, n_human, min_offset_ms=1000)
    human_user = rng.choice(world.n_users, n_human, p=world.user_weight)
    # Crawlers do not sleep: bot traffic is spread evenly over the window.
    bot_ms = np.sort(rng.integers(window.start_ms + 1000, window.end_ms, n_bot))
    bot = rng.integers(0, N_BOT_USERS, n_bot)

    event_ms = np.concatenate([human_ms, bot_ms]).astype(np.int64)
    is_bot = np.concatenate([np.zeros(n_human, bool), np.ones(n_bot, bool)])
    user = np.concatenate([human_user, world.n_users + bot])
    device = np.concatenate([world.user_device[human_user], np.zeros(n_bot, np.int64)])
    human_agents = agents()
    agent = np.concatenate([world.user_agent[human_user], len(human_agents) + world.bot_agent[bot]])
    us = cat.COUNTRIES.index("US")
    country = np.concatenate([world.user_country[human_user], np.full(n_bot, us)])

    campaign = rng.choice(N_CAMPAIGNS, n, p=world.campaign_weight)
    creative = pick_creatives(rng, world, campaign)
    site = rng.choice(len(world.site_hosts), n, p=world.site_weight)
    article = rng.integers(1, 100_000, n)
    cpm = np.clip(world.campaign_cpm[campaign] * rng.lognormal(0.0, 0.25, n), 0.5, 8.0)
    ts_kind = rng.choice(len(TS_KIND_SHARE), n, p=TS_KIND_SHARE)
    placement = pick_placements(rng, world, creative)

    order = np.argsort(event_ms, kind="stable")
    user = user[order]

    def strings(vocab: list[str], index: np.ndarray) -> pl.Series:
        return pl.Series(vocab, dtype=pl.String).gather(index[order])

    frame = pl.DataFrame(
        {
            "impression_id": hex_ids(rng, n, "imp-"),
            "event_ms": event_ms[order],
            "ts_kind": ts_kind[order].astype(np.int8),
            "ad_creative_id": strings(world.creative_ids, creative),
            "campaign_id": strings(world.campaign_ids, campaign),
            "user_id": world.user_id_texts.gather(user),
            "_host": strings(world.site_hosts, site),
            "_path": strings(world.site_paths, site),
            "_article": article[order],
            "placement": strings(cat.PLACEMENTS, placement),
            "device_type": strings(cat.DEVICE_TYPES, device),
            "user_agent": strings(human_agents + cat.BOT_USER_AGENTS, agent),
            "ip": world.ip_texts.gather(user),
            "country": strings(cat.COUNTRIES, country),
            "cost": np.round(cpm[order] / 1000.0, 6),
            "is_bot": is_bot[order],
            "_user": user,
            "_campaign": campaign[order],
            "_creative": creative[order],
        }
    )
    website = pl.format("https://{}/{}/{}", "_host", "_path", "_article")
    return frame.with_columns(
        website=website,
        auction_id=pl.lit(None, dtype=pl.String),
        table=pl.lit("impressions"),
    ).drop("_path", "_article")
