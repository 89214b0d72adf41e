"""Fire drills: run the monitor over a simulation with injected faults, on a simulated clock.

Used by the scenario tests and by ``bench/monitor.py``. A drill evaluates every ``step``
from ``start`` to ``end``, delivering notifications after each evaluation, and notes
when each alert first fired, was first delivered, and resolved — all in simulated time,
so "detection delay" is exact to the step and independent of the machine's speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from advertisex.config import MonitorSettings
from advertisex.monitor.model import HOUR
from advertisex.monitor.notify.base import Notifier
from advertisex.monitor.service import Monitor
from advertisex.synth.monitor_sim import Fault, SimClock, Simulation

# name → (faults relative to the fault time T, the alert that must catch it)
SCENARIOS: dict[str, tuple[list[tuple[str, str, timedelta, float]], str]] = {
    "source stops": ([("stop", "impressions", 2 * HOUR, 0.0)], "SourceStale"),
    "volume drops 50 % for an hour": (
        [("volume", "impressions", HOUR, 0.5)],
        "VolumeAnomaly",
    ),
    "malformed burst": ([("malformed", "bids", HOUR, 0.10)], "QuarantineRateHigh"),
    "duplicate storm": ([("duplicates", "impressions", HOUR, 0.30)], "DuplicateRateHigh"),
    "clicks without impressions": ([("orphans", "clicks", 2 * HOUR, 0.30)], "OrphanClicks"),
}


@dataclass
class DrillResult:
    evaluations: int = 0
    fired: dict[str, datetime] = field(default_factory=dict)  # alertname → first firing
    delivered: dict[str, datetime] = field(default_factory=dict)  # → first delivery
    resolved: dict[str, datetime] = field(default_factory=dict)  # → first resolution
    firing_transitions: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)  # as delivered

    def delay(self, alertname: str, since: datetime) -> timedelta | None:
        """From the fault to the first delivered notification of ``alertname``."""
        at = self.delivered.get(alertname)
        return at - since if at else None


def drill(
    sim: Simulation,
    cfg: MonitorSettings,
    start: datetime,
    end: datetime,
    step: timedelta,
    notifiers: dict[str, Notifier],
    *,
    between: Any = None,
) -> DrillResult:
    """Evaluate every ``step`` in [start, end); ``between(clock)`` runs before each one."""
    clock = SimClock(start)
    monitor = Monitor(cfg, lambda: sim.observe(clock()), notifiers=notifiers, clock=clock)
    result = DrillResult()
    seen: set[int] = set()
    while clock() < end:
        if between is not None:
            between(clock())
        evaluation = monitor.evaluate()
        monitor.delivery.drain()
        result.evaluations += 1
        for t in evaluation.transitions:
            name = t.alert["alertname"]
            if t.state == "firing":
                result.firing_transitions += 1
                result.fired.setdefault(name, t.at)
            elif t.state == "resolved":
                result.resolved.setdefault(name, t.at)
        for row in monitor.store.outbox():
            if not row["delivered_at"] or row["id"] in seen:
                continue
            seen.add(row["id"])
            result.messages.append(row["payload"])
            for alert in row["payload"]["alerts"]:
                if alert["status"] == "firing":
                    result.delivered.setdefault(alert["labels"]["alertname"], clock())
        clock.advance(step)
    monitor.delivery.stop()
    return result


def inject(sim: Simulation, scenario: str, at: datetime) -> str:
    """Inject the faults of ``scenario`` starting at ``at``; returns the expected alert."""
    faults, expected = SCENARIOS[scenario]
    for kind, source, length, amount in faults:
        sim.inject(Fault(kind, source, at, at + length, amount))
    return expected
