"""What monitors read and what they say: :class:`Observations` in, :class:`Finding` out.

Monitors are pure functions ``(Observations, MonitorSettings) -> list[Finding]``. The
observations are small Arrow tables of aggregates (per source and 5-minute or hourly
bucket), assembled either from the lake (:mod:`advertisex.monitor.gather`) or by a
simulation (:mod:`advertisex.synth.monitor_sim`), plus the evaluation time ``now`` — the only
clock a monitor ever reads. A monitor reports only conditions that hold now; an alert
whose condition is no longer reported resolves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyarrow as pa

from advertisex.model.columns import TS

BUCKET = timedelta(minutes=5)
HOUR = timedelta(hours=1)

# Landing and processing per source and 5-minute bucket of *landing* time.
ARRIVALS = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("bucket", TS),
        pa.field("segments", pa.int64()),
        pa.field("bytes", pa.int64()),
        pa.field("records", pa.int64()),  # of committed segments
        pa.field("pending", pa.int64()),  # segments landed, not yet committed
        pa.field("pending_bytes", pa.int64()),
        pa.field("last_landed_at", TS),
        pa.field("oldest_pending_at", TS),
        pa.field("delay_max_s", pa.float64()),  # committed_at - landed_at, worst segment
    ]
)
# Batch accounting (ops.batches) per source and 5-minute bucket of *commit* time.
BATCHES = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("bucket", TS),
        pa.field("records_in", pa.int64()),
        pa.field("accepted", pa.int64()),
        pa.field("quarantined", pa.int64()),
        pa.field("filtered", pa.int64()),
        pa.field("duplicates", pa.int64()),
        pa.field("conflicts", pa.int64()),
    ]
)
# Curated rows per table and hour of ingest time, with event-time lag.
# Landing files set aside whole and still in quarantine (segment_unreadable entries).
SET_ASIDE = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("files", pa.int64()),
        pa.field("oldest", pa.timestamp("us", tz="UTC")),
    ]
)

# Data files a table references that its storage lost or damaged (lake.damage), per table:
# how many, the first of them, and the way back.
DAMAGED = pa.schema(
    [
        pa.field("table", pa.string()),
        pa.field("files", pa.int64()),
        pa.field("first", pa.string()),
        pa.field("way_back", pa.string()),
    ]
)

TABLE_HOURS = pa.schema(
    [
        pa.field("table", pa.string()),
        pa.field("hour", TS),
        pa.field("rows", pa.int64()),
        pa.field("lag_p95_s", pa.float64()),
    ]
)
# Per campaign and hour of ingest time.
CAMPAIGN_HOURS = pa.schema(
    [
        pa.field("campaign_id", pa.string()),
        pa.field("hour", TS),
        pa.field("impressions", pa.int64()),
        pa.field("clicks", pa.int64()),
        pa.field("conversions", pa.int64()),
        pa.field("spend", pa.float64()),
    ]
)
# Cross-source checks per hour of ingest time of the checked rows.
LINKS = pa.schema(
    [
        pa.field("hour", TS),
        pa.field("clicks", pa.int64()),
        pa.field("orphan_clicks", pa.int64()),
        pa.field("conversions", pa.int64()),
        pa.field("unattributed_conversions", pa.int64()),
        pa.field("programmatic_impressions", pa.int64()),
        pa.field("impressions_without_bid", pa.int64()),
        pa.field("won_bids", pa.int64()),
        pa.field("won_bids_without_impression", pa.int64()),
    ]
)
# Fields seen per table and hour: optional columns filled, and keys of ``extras``.
FIELDS = pa.schema(
    [
        pa.field("table", pa.string()),
        pa.field("hour", TS),
        pa.field("field", pa.string()),
        pa.field("type", pa.string()),  # JSON type for extras, "column" for curated columns
        pa.field("rows", pa.int64()),
    ]
)
# Current campaign dimension rows (dims.campaigns), when loaded; ``valid_from`` is when
# this version (its budget) came into force.
CAMPAIGNS = pa.schema(
    [
        pa.field("campaign_id", pa.string()),
        pa.field("budget", pa.float64()),
        pa.field("start_date", pa.date32()),
        pa.field("end_date", pa.date32()),
        pa.field("valid_from", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class ProcessorHealth:
    """What a running follower last wrote of itself (``util.health``). The gatherer
    gives one only for a follower alive: on this host, the holder of the lake's processor
    lock; from another host, its file fresh."""

    pid: int
    host: str
    updated: datetime  # the file's last write: a pass ended or a batch committed
    max_wait_seconds: float  # the longest the follower sleeps between two writes
    failures: int  # passes failed in a row
    failing_since: datetime | None
    last_success: datetime | None
    error: str | None
    hint: str | None
    pid_checked: bool = True  # False: on another host, judged alive by the file's age
    started: datetime | None = None  # when the follower started


@dataclass(frozen=True)
class MartsLag:
    """How far the marts are behind the curated tables (``marts.iceberg.unfolded_since``)."""

    unfolded_since: datetime | None  # the oldest batch not folded in was committed; None: current
    updated: datetime | None  # the marts were last brought up to date


@dataclass(frozen=True)
class Observations:
    """Everything the monitors look at, as of ``now``."""

    now: datetime
    arrivals: pa.Table = field(default_factory=ARRIVALS.empty_table)
    batches: pa.Table = field(default_factory=BATCHES.empty_table)
    tables: pa.Table = field(default_factory=TABLE_HOURS.empty_table)
    campaigns: pa.Table = field(default_factory=CAMPAIGN_HOURS.empty_table)
    links: pa.Table = field(default_factory=LINKS.empty_table)
    fields: pa.Table = field(default_factory=FIELDS.empty_table)
    dims: pa.Table | None = None  # None: no dims.campaigns table, pacing is skipped
    set_aside: pa.Table = field(default_factory=SET_ASIDE.empty_table)
    damaged: pa.Table = field(default_factory=DAMAGED.empty_table)
    processor: ProcessorHealth | None = None  # None: no follower running
    marts: MartsLag | None = None  # None: the marts are not kept current, or never built
    sources: tuple[str, ...] = ("impressions", "clicks", "bids")
    settled_until: datetime | None = None  # hours ending before this are complete

    def settled(self, settle: timedelta) -> datetime:
        """End of the last complete hour: past ``settle`` and with nothing pending before it."""
        limit = floor_hour(self.now - settle)
        if self.settled_until is not None:
            limit = min(limit, floor_hour(self.settled_until))
        return limit


@dataclass(frozen=True)
class Finding:
    """A condition that holds now: alert ``alertname`` with ``labels`` should be active."""

    alertname: str
    labels: dict[str, str]
    severity: str
    summary: str
    value: float | None = None
    threshold: float | None = None

    @property
    def fingerprint(self) -> str:
        parts = [self.alertname, *(f"{k}={v}" for k, v in sorted(self.labels.items()))]
        return "|".join(parts)


def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def floor_bucket(at: datetime) -> datetime:
    return at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)
