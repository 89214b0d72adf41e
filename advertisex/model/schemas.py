"""Canonical Arrow schemas of every table AdvertiseX writes, and the sources feeding them.

One definition serves the kernels (which produce these columns), the lake (which
creates Iceberg tables from them) and the docs. Times are UTC microseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from advertisex.model.alerts import MONITOR_TABLES
from advertisex.model.columns import TS
from advertisex.model.dims import DIM_TABLES
from advertisex.model.marts import MART_TABLES

# Lineage columns every curated row carries: when and from where it entered.
LINEAGE = [
    pa.field("ingest_time", TS, nullable=False),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_position", pa.int64(), nullable=False),
    pa.field("batch_id", pa.string(), nullable=False),
]

# Unknown producer fields are kept as a JSON object text, never dropped.
EXTRAS = pa.field("extras", pa.string())
# Hash of the normalized payload: equal for a retry, different for a conflicting repeat.
PAYLOAD_HASH = pa.field("payload_hash", pa.string(), nullable=False)
# Filled by the enrichment kernel (advertisex/kernels/enrich.py) on every curated event.
EVENT_DAY_HOUR = [
    pa.field("event_date", pa.date32()),
    pa.field("event_hour", pa.int8()),
]
# The campaign's advertiser, from the dimension version true at the event's time.
ADVERTISER = pa.field("advertiser", pa.string())

IMPRESSIONS = pa.schema(
    [
        pa.field("impression_id", pa.string(), nullable=False),
        pa.field("event_time", TS, nullable=False),
        pa.field("ad_creative_id", pa.string(), nullable=False),
        pa.field("campaign_id", pa.string()),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("website", pa.string(), nullable=False),
        pa.field("placement", pa.string()),
        pa.field("device_type", pa.string()),
        pa.field("user_agent", pa.string()),
        pa.field("ip", pa.string()),
        pa.field("country", pa.string()),
        pa.field("cost", pa.float64()),
        pa.field("auction_id", pa.string()),
        pa.field("site_host", pa.string()),  # website's host: lower-case, no www., no port
        pa.field("os", pa.string()),  # from user_agent
        pa.field("browser", pa.string()),  # from user_agent
        ADVERTISER,
        *EVENT_DAY_HOUR,
        EXTRAS,
        PAYLOAD_HASH,
        *LINEAGE,
    ]
)

CLICKS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_time", TS, nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("ad_creative_id", pa.string()),
        pa.field("impression_id", pa.string()),
        ADVERTISER,
        *EVENT_DAY_HOUR,
        EXTRAS,
        PAYLOAD_HASH,
        *LINEAGE,
    ]
)

CONVERSIONS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_time", TS, nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("ad_creative_id", pa.string()),
        pa.field("impression_id", pa.string()),
        pa.field("conversion_type", pa.string()),
        pa.field("conversion_value", pa.float64()),
        pa.field("currency", pa.string()),
        ADVERTISER,
        # The click id a conversion postback carried: attributed to exactly that click.
        pa.field("click_ref", pa.string()),
        *EVENT_DAY_HOUR,
        EXTRAS,
        PAYLOAD_HASH,
        *LINEAGE,
    ]
)

BID_REQUESTS = pa.schema(
    [
        pa.field("auction_id", pa.string(), nullable=False),
        pa.field("exchange", pa.string()),
        pa.field("event_time", TS, nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("site_domain", pa.string()),
        pa.field("device_type", pa.string()),
        pa.field("country", pa.string()),
        pa.field("floor_price", pa.float64()),
        pa.field("ad_targeting", pa.map_(pa.string(), pa.string())),
        pa.field("bid_price", pa.float64()),
        pa.field("campaign_id", pa.string()),
        pa.field("ad_creative_id", pa.string()),
        *EVENT_DAY_HOUR,
        EXTRAS,
        PAYLOAD_HASH,
        *LINEAGE,
    ]
)

# Invalid traffic: disclosed, not deleted — each row with the rules that caught it.
FILTERED = pa.schema(
    [
        pa.field("event_table", pa.string(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_time", TS, nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("campaign_id", pa.string()),
        pa.field("rules", pa.list_(pa.string()), nullable=False),
        pa.field("record", pa.string(), nullable=False),
        *LINEAGE,
    ]
)

QUARANTINE = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("reasons", pa.list_(pa.string()), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("event_time", TS),
        *LINEAGE,
    ]
)

BATCHES = pa.schema(
    [
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("started_at", TS, nullable=False),
        pa.field("committed_at", TS, nullable=False),
        pa.field("files", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("records_in", pa.int64(), nullable=False),
        pa.field("accepted", pa.int64(), nullable=False),
        pa.field("quarantined", pa.int64(), nullable=False),
        pa.field("filtered", pa.int64(), nullable=False),
        pa.field("duplicates", pa.int64(), nullable=False),
        pa.field("conflicts", pa.int64(), nullable=False),
        pa.field("segments", pa.list_(pa.string()), nullable=False),
        # Fields producers sent that the contract does not know (kept in ``extras``):
        # how a schema change shows up.
        pa.field("new_fields", pa.list_(pa.string())),
    ]
)

# One row per table (and the landing zone) per maintenance run: what upkeep did and what
# the table looked like before and after. ``advertisex status`` and the console read it.
MAINTENANCE = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("trigger", pa.string(), nullable=False),  # schedule | command | forget
        pa.field("started_at", TS, nullable=False),
        pa.field("finished_at", TS, nullable=False),
        pa.field("table", pa.string(), nullable=False),  # a table name, or "landing"
        pa.field("data_files_before", pa.int64(), nullable=False),
        pa.field("data_files_after", pa.int64(), nullable=False),
        pa.field("bytes_before", pa.int64(), nullable=False),
        pa.field("bytes_after", pa.int64(), nullable=False),
        pa.field("files_compacted", pa.int64(), nullable=False),  # small files rewritten
        pa.field("files_written", pa.int64(), nullable=False),  # compacted files written
        pa.field("snapshots_expired", pa.int64(), nullable=False),
        pa.field("files_deleted", pa.int64(), nullable=False),  # no longer referenced
        pa.field("orphans_deleted", pa.int64(), nullable=False),  # never referenced
        pa.field("partitions_expired", pa.int64(), nullable=False),  # retention
        pa.field("rows_expired", pa.int64(), nullable=False),
        pa.field("archived", pa.int64(), nullable=False),  # files copied to the archive
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("error", pa.string()),  # why this table was skipped, when it was
    ]
)

ERASURES_TABLE = "ops.erasures"

# One row per forgotten user and table: the audit trail of erasures. The user is named by
# the SHA-256 of their id only, so the trail itself keeps no trace of them.
ERASURES = pa.schema(
    [
        pa.field("erasure_id", pa.string(), nullable=False),
        pa.field("at", TS, nullable=False),
        pa.field("user_hash", pa.string(), nullable=False),
        pa.field("table", pa.string(), nullable=False),  # a table name, or "landing"
        pa.field("rows_removed", pa.int64(), nullable=False),
    ]
)


@dataclass(frozen=True)
class TableSpec:
    """A table AdvertiseX owns: its name, schema, id column and how it is laid out."""

    namespace: str
    name: str
    schema: pa.Schema
    id_column: str | None = None
    partition_by_day: str | None = "event_time"
    sort_by: tuple[str, ...] = ()
    # Text columns of few distinct values (campaigns, devices, browsers, the segment a row
    # came from): the runners hand them to the Parquet writer dictionary-encoded
    # (:meth:`written_schema`), which writes them as it would have encoded them anyway.
    few_values: tuple[str, ...] = ()
    # Columns whose statistics (bounds, null counts) the data files and the manifests keep,
    # besides the partition and sort columns (None: every column's). The others' cost the
    # Parquet writer 10-18 % of its CPU and prune nothing: ids, hashes and texts are spread
    # over every file of a table sorted by campaign and time.
    statistics: tuple[str, ...] | None = None
    # Text columns whose bounds the manifests keep whole, not cut at 16 characters: rows
    # deleted by them can be told from another writer's new files.
    whole_bounds: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.name}"

    def projected(self, columns: Sequence[str]) -> pa.Schema:
        """The table's schema of ``columns`` only, in that order (a read of some columns)."""
        return pa.schema([self.schema.field(name) for name in columns])

    def written_schema(self) -> pa.Schema:
        """The schema rows are written in: ``few_values`` as dictionaries of their text."""
        return pa.schema(
            f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in self.few_values else f
            for f in self.schema
        )

    def without_statistics(self) -> list[str]:
        """The columns whose statistics are not kept (:attr:`statistics`), in schema order.
        Nested columns (a bid's targeting map) keep theirs: metrics are set per leaf, under
        names of pyiceberg's own making."""
        if self.statistics is None:
            return []
        kept = {*self.statistics, *self.sort_by, *filter(None, [self.partition_by_day])}
        return [
            f.name for f in self.schema if f.name not in kept and not pa.types.is_nested(f.type)
        ]


# Few-valued text columns every curated event table has (TableSpec.few_values).
_FEW_VALUES = ("campaign_id", "ad_creative_id", "source_file", "batch_id")

# The statistics a curated event table keeps (TableSpec.statistics), besides its event time
# and campaign (partition and sort): columns a query's filter skips row groups by, those
# the files' order keeps together (a day, an hour, a campaign's creatives and advertiser);
# ``ingest_time``, whose bounds tell the monitors which files are new; ``user_id``'s bounds
# and ``extras``' null counts, which let an erasure pass over the files that cannot hold a
# user without opening them (``lake.erasure``); ``batch_id``'s, which tell a replay (and the
# way back from a lost file) whose rows a compacted file holds without opening it.
_PRUNED_BY = (
    "event_date",
    "event_hour",
    "ad_creative_id",
    "advertiser",
    "ingest_time",
    "user_id",
    "extras",
    "batch_id",
)

TABLES: dict[str, TableSpec] = {
    spec.qualified: spec
    for spec in [
        TableSpec(
            "curated",
            "impressions",
            IMPRESSIONS,
            "impression_id",
            sort_by=("campaign_id", "event_time"),
            statistics=_PRUNED_BY,
            few_values=(
                *_FEW_VALUES,
                "advertiser",
                "placement",
                "device_type",
                "country",
                "user_agent",
                "site_host",
                "os",
                "browser",
            ),
        ),
        TableSpec(
            "curated",
            "clicks",
            CLICKS,
            "event_id",
            sort_by=("campaign_id", "event_time"),
            statistics=_PRUNED_BY,
            few_values=(*_FEW_VALUES, "advertiser"),
        ),
        TableSpec(
            "curated",
            "conversions",
            CONVERSIONS,
            "event_id",
            sort_by=("campaign_id", "event_time"),
            statistics=_PRUNED_BY,
            few_values=(*_FEW_VALUES, "advertiser", "conversion_type", "currency"),
        ),
        TableSpec(
            "curated",
            "bid_requests",
            BID_REQUESTS,
            "auction_id",
            sort_by=("campaign_id", "event_time"),
            statistics=_PRUNED_BY,
            few_values=(*_FEW_VALUES, "exchange", "site_domain", "device_type", "country"),
        ),
        TableSpec(
            "curated",
            "quarantine",
            QUARANTINE,
            None,
            partition_by_day="ingest_time",
            # A replay deletes its records by landing file: cut at "impressions/2026",
            # every file a processor added meanwhile might have held them, and the replay
            # lost the race to each batch of a ``process --follow``.
            whole_bounds=("source_file",),
        ),
        TableSpec("curated", "filtered", FILTERED, None, sort_by=("event_table", "event_time")),
        TableSpec("ops", "batches", BATCHES, None, partition_by_day=None),
        TableSpec("ops", "maintenance", MAINTENANCE, None, partition_by_day="started_at"),
        TableSpec("ops", "erasures", ERASURES, None, partition_by_day="at"),
    ]
}

# Landing sources (what arrives) → curated tables each one feeds.
SOURCES: dict[str, tuple[str, ...]] = {
    "impressions": ("curated.impressions",),
    "clicks": ("curated.clicks", "curated.conversions"),
    "bids": ("curated.bid_requests",),
}

# The marts, the dimensions (SCD type 2) and the monitor's alert history (ops.alerts):
# their schemas live beside this module; register them too.
TABLES.update({f"marts.{t['name']}": TableSpec("marts", **t) for t in MART_TABLES})
TABLES.update({f"dims.{t['name']}": TableSpec("dims", **t) for t in DIM_TABLES})
TABLES.update({f"{t['namespace']}.{t['name']}": TableSpec(**t) for t in MONITOR_TABLES})
