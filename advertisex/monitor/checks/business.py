"""Business anomalies: CTR and conversion-rate shifts per campaign, spend pacing vs budget.

Rates over the last ``business_window_hours`` complete hours are compared with the same
hours on previous days (pooled): a shift must be both large (``business_min_change``)
and significant (binomial z ≥ ``business_z``). Pacing needs ``dims.campaigns`` budgets;
without that table it is skipped.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from advertisex.config import MonitorSettings
from advertisex.monitor.checks.stats import hours_back, proportion_z, sums_by
from advertisex.monitor.model import HOUR, Finding, Observations

# (alertname, numerator, denominator, what)
_RATIOS = [
    ("CtrShift", "clicks", "impressions", "CTR"),
    ("ConversionRateShift", "conversions", "clicks", "conversion rate"),
]


def business(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    """CTR and conversion-rate shifts of each campaign; spend off pace when budgets are known."""
    end = obs.settled(timedelta(seconds=cfg.settle_seconds))
    window = set(hours_back(end, cfg.business_window_hours))
    sums = sums_by(
        obs.campaigns, ["campaign_id", "hour"], ["impressions", "clicks", "conversions", "spend"]
    )
    days = cfg.lookback_days - 1
    baseline_hours = {h - timedelta(days=d) for h in window for d in range(1, days + 1)}
    now: dict[str, dict[str, float]] = {}
    base: dict[str, dict[str, float]] = {}
    for (campaign, hour), values in sums.items():
        target = now if hour in window else base if hour in baseline_hours else None
        if target is None or campaign is None:
            continue
        slot = target.setdefault(campaign, {"impressions": 0.0, "clicks": 0.0, "conversions": 0.0})
        for k in slot:
            slot[k] += values[k]
    findings = []
    for campaign in sorted(now):
        for alertname, num, den, what in _RATIOS:
            n, x = now[campaign][den], now[campaign][num]
            b = base.get(campaign)
            if b is None or n < cfg.business_min_events or b[den] < cfg.business_min_events:
                continue
            p0 = b[num] / b[den]
            p = x / n
            z = proportion_z(x, n, p0)
            change = p / p0 - 1 if p0 else 0.0
            if abs(z) >= cfg.business_z and abs(change) >= cfg.business_min_change:
                findings.append(
                    Finding(
                        alertname,
                        {"source": "clicks", "campaign": campaign},
                        "warning",
                        f"campaign {campaign}: {what} {p:.3%} over the last "
                        f"{cfg.business_window_hours} h, usually {p0:.3%} ({change:+.0%}, z {z:+.1f})",
                        p,
                        p0,
                    )
                )
    findings.extend(pacing(obs, cfg, sums, end))
    return findings


def pacing(
    obs: Observations,
    cfg: MonitorSettings,
    sums: dict[tuple[object, ...], dict[str, float]],
    end: datetime,
) -> list[Finding]:
    """Spend today against the daily share of the budget expected by ``end``.

    The expected share of a day's spend by a given hour follows the campaign's own
    traffic curve on previous days (linear when there is no history yet).
    """
    if obs.dims is None or end.hour < 6:
        return []  # no budgets known, or too early in the day to judge pace
    today = end.date()
    day_start = end.replace(hour=0)
    low, high = cfg.pacing_bounds
    findings = []
    for row in obs.dims.to_pylist():
        campaign, budget = row["campaign_id"], row["budget"]
        start, stop = row["start_date"], row["end_date"]
        if not budget or not _running(today, start, stop):
            continue
        flight_days = (stop - start).days + 1 if start and stop else 30
        daily = budget / flight_days
        spent = sum(
            sums.get((campaign, day_start + HOUR * h), {}).get("spend", 0.0)
            for h in range(end.hour)
        )
        expected = daily * _share_by(sums, campaign, end, cfg.lookback_days - 1)
        if expected <= 0:
            continue
        ratio = spent / expected
        if not low <= ratio <= high:
            findings.append(
                Finding(
                    "SpendOffPace",
                    {"source": "impressions", "campaign": campaign},
                    "warning",
                    f"campaign {campaign}: spent {spent:,.2f} today by {end:%H}:00, expected "
                    f"about {expected:,.2f} of its {daily:,.2f} daily budget ({ratio:.0%} of pace)",
                    ratio,
                    high if ratio > high else low,
                )
            )
    return findings


def _running(today: date, start: date | None, stop: date | None) -> bool:
    return (start is None or start <= today) and (stop is None or today <= stop)


def _share_by(
    sums: dict[tuple[object, ...], dict[str, float]], campaign: str, end: datetime, days: int
) -> float:
    """Share of a day's spend the campaign usually has by ``end``'s hour."""
    before = total = 0.0
    for d in range(1, days + 1):
        day = end.replace(hour=0) - timedelta(days=d)
        for h in range(24):
            spend = sums.get((campaign, day + HOUR * h), {}).get("spend", 0.0)
            total += spend
            before += spend if h < end.hour else 0.0
    return before / total if total > 0 else end.hour / 24
