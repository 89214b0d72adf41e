"""Is data flowing? Freshness per source, ingest delay and event-time lag, data-quality rates.

Freshness and delay read the landing/commit aggregates (``arrivals``); rates read the
batch accounting (``batches``, i.e. ``ops.batches``) of the last ``rate_window_seconds``
and compare them with fixed bounds and with their own median over the previous day.
"""

from __future__ import annotations

import statistics
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.config import MonitorSettings
from advertisex.model.reasons import DAMAGE_REASONS
from advertisex.monitor.checks.stats import sums_by
from advertisex.monitor.model import BUCKET, Finding, Observations, floor_bucket

# Rate name → (alertname, counted column).
RATES = {
    "quarantine": ("QuarantineRateHigh", "quarantined"),
    "duplicate": ("DuplicateRateHigh", "duplicates"),
    "conflict": ("ConflictRateHigh", "conflicts"),
    "filtered": ("InvalidTrafficRateHigh", "filtered"),
}


def freshness(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    """A source that has landed nothing for longer than its expected interval is stale."""
    findings = []
    for source in obs.sources:
        rows = obs.arrivals.filter(pc.equal(obs.arrivals.column("source"), source))
        last = pc.max(rows.column("last_landed_at")).as_py() if rows.num_rows else None
        if last is None:
            continue  # never seen within the lookback: not a source in use here
        limit = cfg.freshness_seconds.get(source, 900)
        age = (obs.now - last).total_seconds()
        if age > limit:
            findings.append(
                Finding(
                    "SourceStale",
                    {"source": source},
                    "critical",
                    f"no {source} landed for {duration(age)} (expected at least every "
                    f"{duration(limit)}); last at {last:%Y-%m-%d %H:%M:%S} UTC",
                    age,
                    float(limit),
                )
            )
    return findings


def delay(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    """Landing → queryable too slow (recent commits or a segment still pending), or events late."""
    findings = []
    since = floor_bucket(obs.now) - timedelta(seconds=cfg.rate_window_seconds)
    recent = obs.arrivals.filter(pc.greater_equal(obs.arrivals.column("bucket"), since))
    for source in obs.sources:
        rows = obs.arrivals.filter(pc.equal(obs.arrivals.column("source"), source))
        mine = recent.filter(pc.equal(recent.column("source"), source))
        worst = pc.max(mine.column("delay_max_s")).as_py() or 0.0
        oldest = pc.min(rows.column("oldest_pending_at")).as_py() if rows.num_rows else None
        if oldest is not None:
            worst = max(worst, (obs.now - oldest).total_seconds())
        if worst > cfg.delay_max_seconds:
            findings.append(
                Finding(
                    "IngestDelayHigh",
                    {"source": source},
                    "warning",
                    f"{source}: landing to queryable took {duration(worst)} "
                    f"(bound {duration(cfg.delay_max_seconds)})"
                    + (" and a segment is still pending" if oldest is not None else ""),
                    worst,
                    float(cfg.delay_max_seconds),
                )
            )
    settled = obs.settled(timedelta(seconds=cfg.settle_seconds))
    hour = obs.tables.filter(pc.equal(obs.tables.column("hour"), settled - timedelta(hours=1)))
    for row in hour.to_pylist():
        lag = row["lag_p95_s"]
        if lag is not None and lag > cfg.event_lag_max_seconds:
            findings.append(
                Finding(
                    "EventLagHigh",
                    {"source": _source_of(row["table"]), "table": row["table"]},
                    "warning",
                    f"{row['table']}: 95 % of the rows that arrived at {row['hour']:%H}:00 were "
                    f"up to {duration(lag)} old (bound {duration(cfg.event_lag_max_seconds)})",
                    lag,
                    float(cfg.event_lag_max_seconds),
                )
            )
    return findings


def rates(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    """Quarantine, duplicate, conflict and invalid-traffic shares: above a bound, or jumping."""
    window = timedelta(seconds=cfg.rate_window_seconds)
    start = floor_bucket(obs.now) - window + BUCKET
    bucket = obs.batches.column("bucket")
    current = obs.batches.filter(pc.greater_equal(bucket, start))
    past = obs.batches.filter(
        pc.and_(pc.less(bucket, start), pc.greater_equal(bucket, start - timedelta(days=1)))
    )
    columns = ["records_in", *(c for _, c in RATES.values())]
    now_sums = sums_by(current, ["source"], columns)
    hourly = sums_by(past, ["source", "bucket"], columns, hourly="bucket")
    findings = []
    for (source,), sums in sorted(now_sums.items()):
        total = sums["records_in"]
        if total < cfg.rate_min_records:
            continue
        for rate_name, (alertname, column) in RATES.items():
            rate = sums[column] / total
            history = [
                h[column] / h["records_in"]
                for (s, _), h in hourly.items()
                if s == source and h["records_in"] >= cfg.rate_min_records
            ]
            usual = statistics.median(history) if len(history) >= 3 else None
            bound = cfg.rate_max.get(rate_name, 1.0)
            jumped = (
                usual is not None
                and rate > cfg.rate_jump_factor * usual
                and rate - usual > cfg.rate_jump_min
            )
            if rate <= bound and not jumped:
                continue
            why = f"above the bound {bound:.2%}" if rate > bound else f"up from {usual:.2%}"
            findings.append(
                Finding(
                    alertname,
                    {"source": source},
                    "critical" if rate > 2 * bound else "warning",
                    f"{source}: {rate:.2%} of {int(total):,} records {column} in the last "
                    f"{duration(window.total_seconds())}, {why}",
                    rate,
                    bound,
                )
            )
    return findings


def _source_of(table: str) -> str:
    name = table.split(".")[-1]
    return {"bid_requests": "bids", "conversions": "clicks"}.get(name, name)


def duration(seconds: float) -> str:
    """``seconds`` as people say it: 90 s, 12 min, 2.5 h."""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def set_aside(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    """Landing files the processor set aside whole: their records are in no table until
    the cause is fixed and they are replayed (the entry leaves the quarantine then). And
    landing files damaged past some point (a gzip stream, an Avro block): their records
    before it were kept, those after it are in no table until the producer sends the file
    again — a warning while the damage is within the lookback."""
    findings = []
    for source in obs.sources:
        rows = obs.set_aside.filter(pc.equal(obs.set_aside.column("source"), source))
        damaged = pc.is_in(rows.column("reason"), value_set=pa.array(DAMAGE_REASONS))
        for name, severity, part, what, todo in (
            (
                "LandingFilesSetAside",
                "critical",
                rows.filter(pc.invert(damaged)),
                "set aside whole",
                "their records are in no table; fix the cause, then advertisex quarantine "
                "replay --reason segment_unreadable",
            ),
            (
                "LandingFilesDamaged",
                "warning",
                rows.filter(damaged),
                "damaged",
                "their records past the damage are in no table; have the producer send them "
                "again (advertisex quarantine show --reason gzip_damaged or avro_unreadable "
                "says which and where)",
            ),
        ):
            files = int(pc.sum(part.column("files")).as_py() or 0)
            if files:
                causes = ", ".join(f"{r['reason']} ×{r['files']}" for r in part.to_pylist())
                summary = f"{files} {source} landing file(s) {what} ({causes}): {todo}"
                findings.append(
                    Finding(name, {"source": source}, severity, summary, float(files), 0.0)
                )
    return findings


def lake_files(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    """Data files a table references that its storage lost or damaged (deleted, cut
    short, written over: ``lake.damage``): every read of the table fails on them until
    their rows are rebuilt or restored, which the summary says how to do."""
    return [
        Finding(
            "LakeFilesDamaged",
            {"table": row["table"]},
            "critical",
            f"{row['files']} data file(s) of {row['table']} cannot be read, e.g. "
            f"{row['first']}: {row['way_back']}",
            float(row["files"]),
            0.0,
        )
        for row in obs.damaged.to_pylist()
    ]
