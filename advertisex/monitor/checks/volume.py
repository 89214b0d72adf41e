"""Volume anomalies per source and for the largest campaigns, against a seasonal baseline.

The last complete hour is compared with the same hour on up to ``lookback_days − 1``
previous days: median and MAD, with the spread never below Poisson noise. An hour is
anomalous when its robust z-score reaches ``volume_sensitivity`` *and* it moved by at
least ``volume_min_change`` from the median — the first guards against noise, the
second against alerting on statistically real but operationally irrelevant shifts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from advertisex.config import MonitorSettings
from advertisex.monitor.checks.stats import Seasonal, at_hours_of_day, seasonal, sums_by
from advertisex.monitor.model import HOUR, Finding, Observations


def volume(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    """Records landed per source, and impressions of the top campaigns, in the last hour."""
    hour = obs.settled(timedelta(seconds=cfg.settle_seconds)) - HOUR
    days = cfg.lookback_days - 1
    findings = []
    arrivals = at_hours_of_day(obs.arrivals, "bucket", [hour.hour])
    per_source = sums_by(arrivals, ["source", "bucket"], ["records"], hourly="bucket")
    series = {k: v["records"] for k, v in per_source.items()}
    for source in obs.sources:
        first = min((at for s, at in series if s == source), default=None)
        s = seasonal(series, (source,), hour, days, first)
        if _anomalous(s, cfg):
            findings.append(
                _finding("VolumeAnomaly", {"source": source}, f"{source} records", s, hour)
            )
    per_campaign = sums_by(
        at_hours_of_day(obs.campaigns, "hour", [hour.hour]),
        ["campaign_id", "hour"],
        ["impressions"],
    )
    counts = {k: v["impressions"] for k, v in per_campaign.items()}
    first_seen: dict[str, datetime] = {}
    for campaign, at in counts:
        first_seen[campaign] = min(at, first_seen.get(campaign, at))
    for campaign in top_campaigns(counts, hour, cfg.volume_top_campaigns):
        s = seasonal(counts, (campaign,), hour, days, first_seen.get(campaign))
        if _anomalous(s, cfg):
            findings.append(
                _finding(
                    "CampaignVolumeAnomaly",
                    {"source": "impressions", "campaign": campaign},
                    f"impressions of campaign {campaign}",
                    s,
                    hour,
                )
            )
    return findings


def top_campaigns(counts: dict[tuple[str, datetime], float], hour: datetime, n: int) -> list[str]:
    """The ``n`` campaigns with the most impressions at this hour on the days before ``hour``."""
    totals: dict[str, float] = {}
    for (campaign, at), value in counts.items():
        if at < hour and campaign is not None:
            totals[campaign] = totals.get(campaign, 0.0) + value
    return sorted(totals, key=lambda c: (-totals[c], c))[:n]


def _anomalous(s: Seasonal, cfg: MonitorSettings) -> bool:
    return (
        len(s.history) >= cfg.volume_min_history_days
        and s.median >= cfg.volume_min_expected
        and abs(s.z) >= cfg.volume_sensitivity
        and abs(s.change) >= cfg.volume_min_change
    )


def _finding(
    alertname: str, labels: dict[str, str], what: str, s: Seasonal, hour: datetime
) -> Finding:
    direction = "dropped" if s.value < s.median else "jumped"
    return Finding(
        alertname,
        labels,
        "warning",
        f"{what} {direction} to {int(s.value):,} at {hour:%Y-%m-%d %H}:00 UTC, "
        f"usually {int(s.median):,} at that hour ({s.change:+.0%}, robust z {s.z:+.1f})",
        s.value,
        s.median,
    )
