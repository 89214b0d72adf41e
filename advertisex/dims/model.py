"""A read-only snapshot of the dimension versions, handed to kernels as plain Arrow.

Kernels never open catalogs: the runner reads the ``dims.*`` tables once per batch
(cheaply, see :func:`advertisex.dims.store.snapshot`) and passes this object in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Dimensions:
    """Every version of every campaign and creative; None for a kind never loaded."""

    campaigns: pa.Table | None = None
    creatives: pa.Table | None = None

    @property
    def empty(self) -> bool:
        return not (self.campaigns and self.campaigns.num_rows) and not (
            self.creatives and self.creatives.num_rows
        )

    def known_ids(self) -> dict[str, pa.Array] | None:
        """Distinct ids per loaded kind: ``{"campaign_id": …, "ad_creative_id": …}``.

        A kind that was never loaded is absent (so "unknown campaign" is only judged once
        campaigns are loaded); None when no dimensions are loaded at all. Ids of every
        version count: a campaign that ended is still a known campaign.
        """
        known: dict[str, pa.Array] = {}
        if self.campaigns is not None and self.campaigns.num_rows:
            known["campaign_id"] = _distinct(self.campaigns, "campaign_id")
        if self.creatives is not None and self.creatives.num_rows:
            known["ad_creative_id"] = _distinct(self.creatives, "ad_creative_id")
        return known or None


def _distinct(table: pa.Table, column: str) -> pa.Array:
    return pc.unique(table.column(column).combine_chunks()).sort()
