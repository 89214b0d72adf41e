"""The monitors: pure functions ``(Observations, MonitorSettings) -> list[Finding]``.

A plain registry from monitor name to function. Each monitor reads only the
observations and their ``now``, so a simulated week of evaluations runs in seconds and
a unit test needs no lake, no clock and no network.
"""

from __future__ import annotations

from collections.abc import Callable

from advertisex.config import MonitorSettings
from advertisex.monitor.checks.business import business
from advertisex.monitor.checks.discrepancy import discrepancy
from advertisex.monitor.checks.flow import delay, freshness, lake_files, rates, set_aside
from advertisex.monitor.checks.marts import marts
from advertisex.monitor.checks.processor import processor
from advertisex.monitor.checks.schema import schema
from advertisex.monitor.checks.volume import volume
from advertisex.monitor.model import Finding, Observations

Monitor = Callable[[Observations, MonitorSettings], list[Finding]]

MONITORS: dict[str, Monitor] = {
    "freshness": freshness,
    "delay": delay,
    "processor": processor,
    "marts": marts,
    "volume": volume,
    "rates": rates,
    "set_aside": set_aside,
    "lake_files": lake_files,
    "business": business,
    "discrepancy": discrepancy,
    "schema": schema,
}


# Monitors that judge complete hours only: their findings change once per settled hour.
HOURLY = frozenset({"volume", "business", "discrepancy", "schema"})


def evaluate(
    obs: Observations, cfg: MonitorSettings, only: frozenset[str] | None = None
) -> tuple[list[Finding], dict[str, str]]:
    """Run every enabled monitor (or those in ``only``); returns the findings and, per
    failed monitor, its error.

    One broken monitor (say, on data it did not expect) never hides the others' findings.
    """
    findings: list[Finding] = []
    errors: dict[str, str] = {}
    for name, monitor in MONITORS.items():
        if name in cfg.disabled or (only is not None and name not in only):
            continue
        try:
            findings.extend(monitor(obs, cfg))
        except Exception as error:  # reported as a MonitorFailed alert by the caller
            errors[name] = f"{type(error).__name__}: {error}"
    return findings, errors
