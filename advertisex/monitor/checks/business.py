"""Business anomalies: CTR and conversion-rate shifts per campaign, spend pacing vs budget.

Rates over the last ``business_window_hours`` complete hours are compared with the same
hours on previous days (pooled): a shift must be both large (``business_min_change``)
and significant (binomial z ≥ ``business_z``). Pacing needs ``dims.campaigns`` budgets;
without that table it is skipped.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pyarrow as pa

from advertisex.config import MonitorSettings
from advertisex.monitor.checks.stats import hours_back, proportion_z, sums_by
from advertisex.monitor.model import Finding, Observations

# (alertname, numerator, denominator, what)
_RATIOS = [
    ("CtrShift", "clicks", "impressions", "CTR"),
    ("ConversionRateShift", "conversions", "clicks", "conversion rate"),
]


def business(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    """CTR and conversion-rate shifts of each campaign; spend off pace when budgets are known."""
    end = obs.settled(timedelta(seconds=cfg.settle_seconds))
    window = hours_back(end, cfg.business_window_hours)
    days = cfg.lookback_days - 1
    baseline = [h - timedelta(days=d) for h in window for d in range(1, days + 1)]
    values = ["impressions", "clicks", "conversions"]
    now = _by_campaign(obs.campaigns, window, values)
    base = _by_campaign(obs.campaigns, baseline, values)
    findings: list[Finding] = []
    if _gap(obs, window):
        now = {}  # a source was silent in the window: the ratios would only echo that
    for campaign in sorted(c for c in now if c is not None):
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
    findings.extend(pacing(obs, cfg, end))
    return findings


def _gap(obs: Observations, window: list[datetime]) -> bool:
    """Whether impressions or clicks landed nothing in one of the window's hours.

    That incident is the freshness and volume monitors' to report; a CTR computed over
    it would raise a second, misleading alert for every campaign.
    """
    landed = sums_by(obs.arrivals, ["source", "bucket"], ["records"], hourly="bucket")
    return any(
        landed.get((source, hour), {"records": 0.0})["records"] == 0
        for source in ("impressions", "clicks")
        for hour in window
    )


def _by_campaign(
    campaigns: pa.Table, hours: list[datetime], values: list[str]
) -> dict[str, dict[str, float]]:
    import pyarrow.compute as pc

    wanted = pa.array(hours, pa.timestamp("us", tz="UTC"))
    rows = campaigns.filter(pc.is_in(campaigns.column("hour"), wanted))
    return {k[0]: v for k, v in sums_by(rows, ["campaign_id"], values).items()}


def pacing(obs: Observations, cfg: MonitorSettings, end: datetime) -> list[Finding]:
    """Spend today against the daily share of the budget expected by ``end``.

    The expected share of a day's spend by a given hour follows the campaign's own
    traffic curve on previous days (linear when there is no history yet). A campaign is
    judged only on a day its budget was in force from the start of (a budget loaded at
    15:00 says nothing about the spend before it), and once it has any spend data at all.
    """
    if obs.dims is None or end.hour < 6:
        return []  # no budgets known, or too early in the day to judge pace
    import pyarrow.compute as pc

    today = end.date()
    day_start = end.replace(hour=0)
    hours = obs.campaigns.column("hour")
    spent = sums_by(
        obs.campaigns.filter(pc.and_(pc.greater_equal(hours, day_start), pc.less(hours, end))),
        ["campaign_id"],
        ["spend"],
    )
    past = obs.campaigns.filter(pc.less(hours, day_start))
    early = pc.if_else(pc.less(pc.hour(past.column("hour")), end.hour), past.column("spend"), 0.0)
    curve = sums_by(past.append_column("early", early), ["campaign_id"], ["spend", "early"])
    low, high = cfg.pacing_bounds
    findings = []
    seen = set(obs.campaigns.column("campaign_id").to_pylist())
    for row in obs.dims.to_pylist():
        campaign, budget = row["campaign_id"], row["budget"]
        start, stop = row["start_date"], row["end_date"]
        if not budget or not _running(today, start, stop) or campaign not in seen:
            continue
        in_force = row.get("valid_from")
        if in_force is not None and in_force > day_start:
            continue  # loaded during the day being judged: tomorrow is its first full day
        flight_days = (stop - start).days + 1 if start and stop else 30
        daily = budget / flight_days
        usual = curve.get((campaign,), {"spend": 0.0, "early": 0.0})
        share = usual["early"] / usual["spend"] if usual["spend"] > 0 else end.hour / 24
        expected = daily * share
        if expected <= 0:
            continue
        done = spent.get((campaign,), {"spend": 0.0})["spend"]
        ratio = done / expected
        if not low <= ratio <= high:
            findings.append(
                Finding(
                    "SpendOffPace",
                    {"source": "impressions", "campaign": campaign},
                    "warning",
                    f"campaign {campaign}: spent {done:,.2f} today by {end:%H}:00, expected "
                    f"about {expected:,.2f} of its {daily:,.2f} daily budget ({ratio:.0%} of pace)",
                    ratio,
                    high if ratio > high else low,
                )
            )
    return findings


def _running(today: date, start: date | None, stop: date | None) -> bool:
    return (start is None or start <= today) and (stop is None or today <= stop)
