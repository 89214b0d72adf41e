"""The pipeline at a glance: per source freshness, backlog, volume and rates; alerts now.

Pure: built from one :class:`Observations` and the current alerts, so ``advertisex
status`` and the tests read the same rows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyarrow.compute as pc

from advertisex.monitor.checks.stats import sums_by
from advertisex.monitor.model import Observations


def source_rows(obs: Observations, window: timedelta = timedelta(hours=1)) -> list[dict[str, Any]]:
    """One row per source: last landing, freshness, backlog, records and rates in ``window``."""
    since = obs.now - window
    recent = obs.batches.filter(pc.greater_equal(obs.batches.column("bucket"), since))
    columns = ["records_in", "quarantined", "duplicates", "conflicts", "filtered"]
    sums = sums_by(recent, ["source"], columns)
    rows = []
    for source in obs.sources:
        arrivals = obs.arrivals.filter(pc.equal(obs.arrivals.column("source"), source))
        last = pc.max(arrivals.column("last_landed_at")).as_py() if arrivals.num_rows else None
        s = sums.get((source,), dict.fromkeys(columns, 0.0))
        total = s["records_in"]

        def rate(name: str, s: dict[str, float] = s, total: float = total) -> float | None:
            return round(s[name] / total, 5) if total else None

        rows.append(
            {
                "source": source,
                "last_landed": last.isoformat(timespec="seconds") if last else None,
                "freshness_s": round((obs.now - last).total_seconds()) if last else None,
                "backlog_segments": int(pc.sum(arrivals.column("pending")).as_py() or 0),
                "backlog_bytes": int(pc.sum(arrivals.column("pending_bytes")).as_py() or 0),
                "records_1h": int(total),
                "quarantine_rate": rate("quarantined"),
                "duplicate_rate": rate("duplicates"),
                "conflict_rate": rate("conflicts"),
                "filtered_rate": rate("filtered"),
            }
        )
    return rows


def alert_rows(alerts: list[dict[str, Any]], *, firing_only: bool = False) -> list[dict[str, Any]]:
    """Current alerts (from the state store) as rows, most severe first."""
    order = {"critical": 0, "warning": 1, "info": 2}
    rows = [
        {
            "alertname": a["alertname"],
            "state": a["state"],
            "severity": a["severity"],
            "labels": ", ".join(
                f"{k}={v}"
                for k, v in sorted(a["labels"].items())
                if k not in ("alertname", "severity")
            ),
            "since": a["active_since"],
            "summary": a["summary"],
        }
        for a in alerts
        if not firing_only or a["state"] == "firing"
    ]
    return sorted(rows, key=lambda r: (order.get(r["severity"], 3), r["alertname"], r["labels"]))


def processor_row(obs: Observations) -> dict[str, Any] | None:
    """The running follower's health (``util.health``), or None when none runs."""
    health = obs.processor
    if health is None:
        return None
    return {
        "state": "failing" if health.failures else "running",
        "pid": health.pid,
        "host": health.host,
        "last_success": health.last_success.isoformat(timespec="seconds")
        if health.last_success
        else None,
        "failures": health.failures,
        "failing_since": health.failing_since.isoformat(timespec="seconds")
        if health.failing_since
        else None,
        "error": health.error,
        "hint": health.hint,
    }
