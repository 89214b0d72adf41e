"""The synthetic world: campaigns with creatives and budgets, websites, users and bots.

Everything is drawn once from the seeded generator and kept as numpy index arrays plus
small string vocabularies; events later pick indices and gather strings in bulk.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from advertisex.synth import catalog as cat
from advertisex.synth.clock import Window

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

N_CAMPAIGNS = 20
N_BOT_USERS = 8
BOT_CTR = 0.03  # click-spam crawlers "click" more often than people do


@dataclass(frozen=True)
class World:
    """Index arrays describing who and what can appear in events."""

    campaigns: pl.DataFrame  # dims/campaigns.csv
    creatives: pl.DataFrame  # dims/creatives.csv
    campaign_weight: np.ndarray  # share of traffic per campaign
    campaign_cpm: np.ndarray  # typical clearing CPM per campaign
    campaign_cvr: np.ndarray  # conversions per click
    campaign_goal: np.ndarray  # index into CONVERSION_TYPES
    campaign_currency: np.ndarray  # index into CURRENCIES
    creative_campaign: np.ndarray  # campaign index per creative
    creative_weight: np.ndarray  # share of its campaign's traffic
    creative_ctr: np.ndarray  # click-through rate per creative
    creative_format: np.ndarray  # index into FORMATS
    site_hosts: list[str]
    site_paths: list[str]
    site_weight: np.ndarray
    user_weight: np.ndarray  # heavy-tailed activity, sums to 1
    user_device: np.ndarray
    user_agent: np.ndarray  # index into the flattened agent list (agents())
    user_country: np.ndarray
    user_octets: np.ndarray  # (n, 4) IPv4 octets
    user_age: np.ndarray
    user_gender: np.ndarray
    user_interests: np.ndarray  # index into interest_combos()
    bot_agent: np.ndarray  # index into BOT_USER_AGENTS per bot user
    bot_octets: np.ndarray  # (N_BOT_USERS, 4)

    @property
    def n_users(self) -> int:
        return len(self.user_weight)

    @property
    def campaign_ids(self) -> list[str]:
        return self.campaigns["campaign_id"].to_list()

    @property
    def creative_ids(self) -> list[str]:
        return self.creatives["ad_creative_id"].to_list()

    def user_ids(self, index: np.ndarray) -> pl.Series:
        """``u-0000123`` for user indices below :attr:`n_users` (the humans); the bot users
        after them are ``u-b000000`` on: an id space of their own, so a world of another
        size (the README's 200,000-event tour beside the demo's million, in one lake) never
        names one of its humans as another's bot — their crawling then made the demo's
        human ``u-0010003`` a crawler, and its truth check fail on a second run."""
        import polars as pl

        i = pl.col("i")
        return (
            pl.DataFrame({"i": pl.Series(index, dtype=pl.Int64)})
            .select(
                pl.when(i < self.n_users)
                .then(pl.concat_str([pl.lit("u-"), i.cast(pl.String).str.zfill(7)]))
                .otherwise(
                    pl.concat_str([pl.lit("u-b"), (i - self.n_users).cast(pl.String).str.zfill(6)])
                )
                .alias("user_id")
            )
            .to_series()
        )

    # Each user's id and address as text, humans then bots (a user's index is its row):
    # an event gathers its user's, instead of formatting one per event (the demo's 550 k
    # impressions: 0.2 s of the generator's one-threaded start, where a core waits).
    @cached_property
    def user_id_texts(self) -> pl.Series:
        import numpy as np

        return self.user_ids(np.arange(self.n_users + N_BOT_USERS))

    @cached_property
    def ip_texts(self) -> pl.Series:
        import numpy as np

        return ip_strings(np.concatenate([self.user_octets, self.bot_octets]))

    def bot_user_ids(self) -> list[str]:
        return self.user_id_texts[self.n_users :].to_list()


def ip_strings(octets: np.ndarray) -> pl.Series:
    """``a.b.c.d`` for each row of IPv4 ``octets`` (n × 4)."""
    import polars as pl

    frame = pl.DataFrame({str(i): octets[:, i] for i in range(4)})
    return frame.select(ip=pl.concat_str([pl.col(str(i)) for i in range(4)], separator="."))["ip"]


def agents() -> list[str]:
    """All human user agents, flattened in device order (``World.user_agent`` indexes it)."""
    return [ua for pool in cat.USER_AGENTS for ua in pool]


def interest_combos() -> list[str]:
    """Every set of one to three interests, as the ``sports,tech`` strings bidders see."""
    return [
        ",".join(combo)
        for size in (1, 2, 3)
        for combo in itertools.combinations(cat.INTERESTS, size)
    ]


def build_world(rng: np.random.Generator, window: Window, n_users: int) -> World:
    """Draw campaigns, creatives, sites and users for one generation run."""
    import numpy as np
    import polars as pl

    # Campaigns: traffic share, price level, response rates, goal and currency.
    campaign_weight = rng.lognormal(0.0, 0.8, N_CAMPAIGNS)
    campaign_weight /= campaign_weight.sum()
    campaign_cpm = rng.uniform(0.8, 6.0, N_CAMPAIGNS)
    campaign_ctr = np.exp(rng.uniform(np.log(0.003), np.log(0.016), N_CAMPAIGNS))
    campaign_cvr = rng.uniform(0.02, 0.06, N_CAMPAIGNS)
    advertiser = rng.integers(0, len(cat.ADVERTISERS), N_CAMPAIGNS)
    theme = rng.integers(0, len(cat.THEMES), N_CAMPAIGNS)
    goal = np.array([cat.CONVERSION_TYPES.index(cat.THEMES[t][1]) for t in theme])
    currency = rng.choice(len(cat.CURRENCIES), N_CAMPAIGNS, p=cat.CURRENCY_SHARE)
    starts_before = rng.integers(0, 31, N_CAMPAIGNS)
    ends_after = rng.integers(0, 61, N_CAMPAIGNS)
    last_day = window.start + timedelta(days=window.days - 1)
    campaigns = pl.DataFrame(
        {
            "campaign_id": [f"cmp-{i + 1:03d}" for i in range(N_CAMPAIGNS)],
            "advertiser": [cat.ADVERTISERS[a] for a in advertiser],
            "campaign_name": [
                f"{cat.ADVERTISERS[a]} - {cat.THEMES[t][0]}"
                for a, t in zip(advertiser, theme, strict=True)
            ],
            "budget": np.round(rng.uniform(5_000, 100_000, N_CAMPAIGNS), -2),
            "currency": [cat.CURRENCIES[c] for c in currency],
            "start_date": [window.start - timedelta(days=int(d)) for d in starts_before],
            "end_date": [last_day + timedelta(days=int(d)) for d in ends_after],
        }
    )

    # Creatives: 3–6 per campaign, each with its own format and click-through rate.
    per_campaign = rng.integers(3, 7, N_CAMPAIGNS)
    creative_campaign = np.repeat(np.arange(N_CAMPAIGNS), per_campaign)
    n_creatives = len(creative_campaign)
    creative_format = rng.choice(len(cat.FORMATS), n_creatives, p=cat.FORMAT_SHARE)
    raw_weight = rng.uniform(0.3, 1.0, n_creatives)
    campaign_total = np.bincount(creative_campaign, weights=raw_weight)
    creative_weight = raw_weight / campaign_total[creative_campaign]
    creative_ctr = np.clip(
        campaign_ctr[creative_campaign] * rng.uniform(0.75, 1.25, n_creatives), 0.0012, 0.0195
    )
    sizes = [
        cat.FORMAT_SIZES[cat.FORMATS[f]][
            int(rng.integers(0, len(cat.FORMAT_SIZES[cat.FORMATS[f]])))
        ]
        for f in creative_format
    ]
    creatives = pl.DataFrame(
        {
            "ad_creative_id": [f"cr-{i + 1:04d}" for i in range(n_creatives)],
            "campaign_id": [f"cmp-{c + 1:03d}" for c in creative_campaign],
            "format": [cat.FORMATS[f] for f in creative_format],
            "size": sizes,
        }
    )

    # Websites: a Zipf-ish popularity so a few sites carry most of the traffic.
    site_hosts = [
        f"www.{stem}-{k}.com"
        for stem, _ in cat.SITE_CATEGORIES
        for k in range(1, cat.SITES_PER_CATEGORY + 1)
    ]
    site_paths = [path for _, path in cat.SITE_CATEGORIES for _ in range(cat.SITES_PER_CATEGORY)]
    site_weight = 1.0 / np.arange(1, len(site_hosts) + 1) ** 0.9
    site_weight = rng.permutation(site_weight / site_weight.sum())

    # Users: heavy-tailed activity (a few users see very many ads), stable device,
    # browser, address, country and targeting profile each.
    user_weight = 1.0 / np.arange(1, n_users + 1) ** 1.05
    user_weight = rng.permutation(user_weight / user_weight.sum())
    user_device = rng.choice(len(cat.DEVICE_TYPES), n_users, p=cat.DEVICE_SHARE)
    pool_sizes = np.array([len(pool) for pool in cat.USER_AGENTS])
    pool_offsets = np.concatenate([[0], np.cumsum(pool_sizes)[:-1]])
    user_agent = pool_offsets[user_device] + rng.integers(0, pool_sizes[user_device])
    user_octets = np.column_stack(
        [
            rng.choice(cat.PUBLIC_FIRST_OCTETS, n_users),
            rng.integers(0, 256, n_users),
            rng.integers(0, 256, n_users),
            rng.integers(1, 255, n_users),
        ]
    )

    # Bots: a few dedicated users, each with one crawler agent; Googlebot crawls from
    # Google's 66.249.64.0/19, the others from assorted hosting ranges.
    bot_agent = np.arange(N_BOT_USERS) % len(cat.BOT_USER_AGENTS)
    bot_octets = np.column_stack(
        [
            rng.choice(cat.PUBLIC_FIRST_OCTETS, N_BOT_USERS),
            rng.integers(0, 256, N_BOT_USERS),
            rng.integers(0, 256, N_BOT_USERS),
            rng.integers(1, 255, N_BOT_USERS),
        ]
    )
    googlebot = bot_agent == cat.GOOGLEBOT_UA_INDEX
    bot_octets[googlebot, 0] = 66
    bot_octets[googlebot, 1] = 249
    bot_octets[googlebot, 2] = rng.integers(64, 96, int(googlebot.sum()))

    return World(
        campaigns=campaigns,
        creatives=creatives,
        campaign_weight=campaign_weight,
        campaign_cpm=campaign_cpm,
        campaign_cvr=campaign_cvr,
        campaign_goal=goal,
        campaign_currency=currency,
        creative_campaign=creative_campaign,
        creative_weight=creative_weight,
        creative_ctr=creative_ctr,
        creative_format=creative_format,
        site_hosts=site_hosts,
        site_paths=site_paths,
        site_weight=site_weight,
        user_weight=user_weight,
        user_device=user_device,
        user_agent=user_agent,
        user_country=rng.choice(len(cat.COUNTRIES), n_users, p=cat.COUNTRY_SHARE),
        user_octets=user_octets,
        user_age=rng.choice(len(cat.AGE_BANDS), n_users, p=cat.AGE_SHARE),
        user_gender=rng.choice(len(cat.GENDERS), n_users, p=cat.GENDER_SHARE),
        user_interests=rng.integers(0, len(interest_combos()), n_users),
        bot_agent=bot_agent,
        bot_octets=bot_octets,
    )


NEW_CAMPAIGN_ID = f"cmp-{N_CAMPAIGNS + 1:03d}"


def launch_campaign(world: World, first_day: date) -> tuple[World, pl.DataFrame, pl.DataFrame]:
    """The world with its smallest campaign relaunched under a new id (``cmp-021``), from
    ``first_day``; also the campaigns export from before the launch (the old id, which
    then has no traffic) and the export's one new row. Draws nothing: every event stays
    as it was but for its campaign id."""
    import numpy as np
    import polars as pl

    old = world.campaign_ids[int(np.argmin(world.campaign_weight))]
    renamed = pl.when(pl.col("campaign_id") == old).then(pl.lit(NEW_CAMPAIGN_ID))
    campaigns = world.campaigns.with_columns(
        renamed.otherwise(pl.col("campaign_id")).alias("campaign_id")
    )
    creatives = world.creatives.with_columns(
        renamed.otherwise(pl.col("campaign_id")).alias("campaign_id")
    )
    added = campaigns.filter(pl.col("campaign_id") == NEW_CAMPAIGN_ID).with_columns(
        start_date=pl.lit(first_day)
    )
    launched = dataclasses.replace(world, campaigns=campaigns, creatives=creatives)
    return launched, world.campaigns, added
