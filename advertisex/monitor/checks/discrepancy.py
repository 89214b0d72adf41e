"""Discrepancies between sources: events that should have a partner and don't.

Shares are judged over the last complete hour (by ingest time of the checked events):
orphan clicks (no impression by ``impression_id``, nor of the same user and campaign in
the hour before), conversions without a click or view, impressions naming an auction no
bid request has, won bids without their impression; and hourly counts of one source
against another (bids and clicks per impression) moving away from their usual ratio.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from advertisex.config import MonitorSettings
from advertisex.monitor.checks.stats import Seasonal, at_hours_of_day, seasonal, sums_by
from advertisex.monitor.model import HOUR, Finding, Observations

# (alertname, setting key, missing column, total column, source label, what)
_SHARES = [
    (
        "OrphanClicks",
        "orphan_clicks",
        "orphan_clicks",
        "clicks",
        "clicks",
        "clicks without an impression",
    ),
    (
        "UnattributedConversions",
        "unattributed_conversions",
        "unattributed_conversions",
        "conversions",
        "clicks",
        "conversions without a click or view",
    ),
    (
        "ImpressionsWithoutBid",
        "impressions_without_bid",
        "impressions_without_bid",
        "programmatic_impressions",
        "impressions",
        "impressions whose auction_id no bid request has",
    ),
    (
        "WonBidsWithoutImpression",
        "won_bids_without_impression",
        "won_bids_without_impression",
        "won_bids",
        "bids",
        "won bids without an impression",
    ),
]
# Source pairs whose hourly count ratio should stay near its usual value.
_PAIRS = [("bids", "impressions"), ("clicks", "impressions")]


def discrepancy(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    hour = obs.settled(timedelta(seconds=cfg.settle_seconds)) - HOUR
    findings = []
    columns = [c for _, _, missing, total, _, _ in _SHARES for c in (missing, total)]
    sums = sums_by(obs.links, ["hour"], columns).get((hour,))
    for alertname, key, missing, total, source, what in _SHARES:
        if sums is None or sums[total] < cfg.discrepancy_min_events:
            continue
        share = sums[missing] / sums[total]
        bound = cfg.discrepancy_max.get(key, 1.0)
        if share > bound:
            findings.append(
                Finding(
                    alertname,
                    {"source": source},
                    "warning",
                    f"{share:.1%} of {int(sums[total]):,} {total.replace('_', ' ')} at "
                    f"{hour:%Y-%m-%d %H}:00 UTC are {what} (bound {bound:.0%})",
                    share,
                    bound,
                )
            )
    findings.extend(_ratios(obs, cfg, hour))
    return findings


def _ratios(obs: Observations, cfg: MonitorSettings, hour: datetime) -> list[Finding]:
    arrivals = at_hours_of_day(obs.arrivals, "bucket", [hour.hour])
    per_source = sums_by(arrivals, ["source", "bucket"], ["records"], hourly="bucket")
    bound = cfg.discrepancy_max.get("source_ratio", 0.5)
    findings = []
    for numerator, denominator in _PAIRS:
        ratios: dict[tuple[object, ...], float] = {}
        for (source, at), values in per_source.items():
            if source != numerator:
                continue
            below = per_source.get((denominator, at), {}).get("records", 0.0)
            if below >= cfg.discrepancy_min_events:
                ratios[("ratio", at)] = values["records"] / below
        first = min((at for s, at in per_source if s == numerator), default=None)
        s = seasonal(ratios, ("ratio",), hour, cfg.lookback_days - 1, first, None)
        if ("ratio", hour) not in ratios or not _off(s, cfg, bound):
            continue
        # The ratio rises when the denominator is short, falls when the numerator is.
        short, other = (denominator, numerator) if s.value > s.median else (numerator, denominator)
        findings.append(
            Finding(
                "SourceCountsDisagree",
                {"source": short, "versus": other},
                "warning",
                f"{numerator} per {denominator[:-1]} was {s.value:.3f} at {hour:%H}:00 UTC, "
                f"usually {s.median:.3f} ({s.change:+.0%}): {short} look short",
                s.value,
                s.median,
            )
        )
    return findings


def _off(s: Seasonal, cfg: MonitorSettings, bound: float) -> bool:
    return len(s.history) >= cfg.volume_min_history_days and abs(s.change) > bound
