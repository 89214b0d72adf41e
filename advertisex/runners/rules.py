"""What a batch is judged against, fixed when it starts: one typed object for every path.

A landing batch (on either engine) and a quarantine replay check records against the
same things, so they build them in one place, :meth:`BatchRules.build`:

* ``validation`` — time bounds from ``processor.*`` and the known campaign / creative
  ids once dimensions are loaded (:class:`advertisex.kernels.standardize.Rules`);
* ``ivt`` — the invalid-traffic rules (``None`` when ``processor.ivt_filter`` is off),
  with the users already caught in committed batches when clicks are judged;
* ``dims`` — the dimension snapshot enrichment reads (versions as of event time);
* ``dedupe`` — the committed keys a candidate may repeat
  (:class:`advertisex.runners.committed.DedupeLookup`).

Sources are judged in :data:`SOURCE_WAVES` order: users that impressions expose as
invalid traffic taint the same batch's clicks and conversions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from advertisex.dims import known_ids
from advertisex.dims import snapshot as dimension_snapshot
from advertisex.kernels.ivt import IvtRules
from advertisex.kernels.standardize import Rules
from advertisex.kernels.validate import Domains
from advertisex.runners.committed import CommittedKeys, DedupeLookup

if TYPE_CHECKING:
    from advertisex.config import Settings
    from advertisex.dims.model import Dimensions
    from advertisex.lake.tables import Lake

# Impressions and bids first; then clicks, which the users they caught taint.
SOURCE_WAVES: tuple[tuple[str, ...], ...] = (("impressions", "bids"), ("clicks",))
SOURCE_ORDER: tuple[str, ...] = tuple(s for wave in SOURCE_WAVES for s in wave)


@dataclass(frozen=True)
class BatchRules:
    """Validation rules, invalid-traffic rules, dimensions and the dedupe lookup of one batch."""

    validation: Rules
    ivt: IvtRules | None
    dims: Dimensions | None
    dedupe: DedupeLookup

    @classmethod
    def build(
        cls,
        settings: Settings,
        lake: Lake,
        now: datetime,
        sources: Iterable[str],
        keys: CommittedKeys | None = None,
    ) -> BatchRules:
        """The rules for a batch of ``sources`` starting ``now``, with the lake as it is.

        ``keys`` is a runner's cache of committed dedupe keys, kept between its batches
        (a fresh one when omitted)."""
        horizon = timedelta(days=settings.processor.dedupe_horizon_days)
        return cls(
            validation=validation_rules(settings, lake, now),
            ivt=ivt_rules(settings, lake, set(sources)),
            dims=dimension_snapshot(lake),
            dedupe=DedupeLookup(lake, horizon, keys, nothing_committed=not lake.catalog_made()),
        )

    def with_ivt_users(self, users: Iterable[str]) -> BatchRules:
        """These rules with more invalid-traffic users (caught earlier in the same batch)."""
        users = set(users)
        if self.ivt is None or not users:
            return self
        return replace(self, ivt=self.ivt.with_users(users))


def validation_rules(settings: Settings, lake: Lake, now: datetime) -> Rules:
    """The validation rules a batch starting ``now`` is checked against."""
    processor = settings.processor
    return Rules(
        now=now,
        future_skew=timedelta(seconds=processor.future_skew_seconds),
        max_age=timedelta(days=d) if (d := processor.max_event_age_days) else None,
        domains=known_domains(lake),
    )


def known_domains(lake: Lake) -> Domains | None:
    """Known campaign and creative ids, once dimensions are loaded (else no such check)."""
    known = known_ids(lake)
    if known is None:
        return None
    return Domains(campaigns=known.get("campaign_id"), creatives=known.get("ad_creative_id"))


def ivt_rules(settings: Settings, lake: Lake, sources: set[str]) -> IvtRules | None:
    """The invalid-traffic rules for a batch of ``sources``; with clicks among them, the
    users committed batches caught in impressions (their clicks are invalid traffic too)."""
    processor = settings.processor
    if not processor.ivt_filter:
        return None
    users: frozenset[str] = frozenset()
    if (
        "clicks" in sources
        and lake.catalog_made()  # else no table exists yet: made beside the first pieces
        and lake.table("curated.filtered").current_snapshot() is not None
    ):
        from pyiceberg.expressions import In

        filtered = lake.read(
            "curated.filtered",
            In("event_table", ["curated.impressions"]),  # type: ignore[call-arg,misc]
            ("user_id",),
        )
        users = frozenset(filtered.column("user_id").drop_null().unique().to_pylist())
    return IvtRules(
        crawler_user_agents=True,
        ip_ranges=processor.ivt_ip_ranges,
        test_flags=processor.ivt_test_flags,
        ivt_users=users,
    )
