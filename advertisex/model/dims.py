"""Dimension tables (namespace ``dims``): campaigns and creatives, kept as SCD type 2.

Below everything that uses them (every table schema lives in ``model``): the table registry
in ``advertisex.model.schemas``, the enrichment kernel, the loader. Each row is one *version* of a
campaign or creative, true from ``valid_from`` (inclusive) to ``valid_to`` (exclusive;
null for the current version). ``row_hash`` fingerprints the attributes, so a reload
can tell a changed row from an unchanged one without comparing column by column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from advertisex.model.columns import TS

# Bookkeeping columns of every version.
VERSION_FIELDS = [
    pa.field("row_hash", pa.string(), nullable=False),
    pa.field("valid_from", TS, nullable=False),
    pa.field("valid_to", TS),
    pa.field("loaded_at", TS, nullable=False),
    pa.field("source_file", pa.string(), nullable=False),
]


@dataclass(frozen=True)
class DimKind:
    """One kind of dimension: its key, its attributes (name → Arrow type), its table."""

    kind: str
    key: str
    attributes: dict[str, pa.DataType]
    aliases: dict[str, str]

    @property
    def table(self) -> str:
        return f"dims.{self.kind}"

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field(self.key, pa.string(), nullable=False),
                *[pa.field(name, t) for name, t in self.attributes.items()],
                *VERSION_FIELDS,
            ]
        )


CAMPAIGNS = DimKind(
    "campaigns",
    "campaign_id",
    {
        "advertiser": pa.string(),
        "campaign_name": pa.string(),
        "budget": pa.float64(),
        "currency": pa.string(),
        "start_date": pa.date32(),
        "end_date": pa.date32(),
        "click_window_seconds": pa.int64(),
        "click_through_window_seconds": pa.int64(),
        "view_through_window_seconds": pa.int64(),
    },
    {"ad_campaign_id": "campaign_id", "name": "campaign_name"},
)

CREATIVES = DimKind(
    "creatives",
    "ad_creative_id",
    {"campaign_id": pa.string(), "format": pa.string(), "size": pa.string()},
    {"creative_id": "ad_creative_id", "ad_campaign_id": "campaign_id"},
)

KINDS: dict[str, DimKind] = {k.kind: k for k in (CAMPAIGNS, CREATIVES)}

# Table specs for the registry in advertisex.model.schemas (TableSpec keyword arguments).
DIM_TABLES: list[dict[str, Any]] = [
    {"name": k.kind, "schema": k.schema, "id_column": k.key, "partition_by_day": None}
    for k in KINDS.values()
]
