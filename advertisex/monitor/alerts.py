"""Alert lifecycle, grouping and routing — the part Prometheus and Alertmanager play.

Each evaluation hands :meth:`AlertEngine.update` the findings that hold now:

- a new finding starts an alert ``pending``; once it has held for its ``for`` duration
  it is ``firing``; when it is no longer reported a firing alert is ``resolved`` (a
  pending one is simply dropped);
- alerts sharing the ``group_by`` labels form one incident: one message when it starts
  (or gains an alert), one when it is resolved, and a reminder every
  ``repeat_interval_seconds`` while it lasts — never one message per alert per minute;
- a message goes to the channels routed for the highest severity in it.

It returns the state changes (rows for ``ops.alerts``) and the messages to deliver, in
an Alertmanager webhook-compatible shape that every notifier renders from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from advertisex.config import MonitorSettings
from advertisex.monitor.model import Finding
from advertisex.monitor.state import StateStore

SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}
# Default time an alert must hold before it fires; most monitors already judge a window.
# ProcessorFailing and MartsBehind judge their own spans (monitor.processor_failing_seconds,
# monitor.marts_behind_seconds): no ``for``.
DEFAULT_FOR = {
    "SourceStale": 0,
    "IngestDelayHigh": 300,
    "ProcessorFailing": 0,
    "ProcessorStuck": 0,
    "MartsBehind": 0,
    "MonitorFailed": 600,
}


@dataclass(frozen=True)
class Transition:
    """An alert changed state: one row of ``ops.alerts``."""

    at: datetime
    state: str
    alert: dict[str, Any]


class AlertEngine:
    def __init__(self, cfg: MonitorSettings, store: StateStore) -> None:
        self.cfg = cfg
        self.store = store

    def for_duration(self, alertname: str) -> timedelta:
        return timedelta(seconds=self.cfg.for_seconds.get(alertname, DEFAULT_FOR.get(alertname, 0)))

    def update(
        self, findings: list[Finding], now: datetime
    ) -> tuple[list[Transition], list[dict[str, Any]]]:
        """Advance every alert to ``now``; returns (state changes, messages to send)."""
        with self.store.transaction():
            alerts = self.store.load("alerts")
            groups = self.store.load("groups")
            transitions = self._advance(alerts, findings, now)
            messages = self._notify(alerts, groups, transitions, now)
            # Resolved alerts were needed only to tell their group; forget them now.
            live = {k: a for k, a in alerts.items() if a["state"] != "resolved"}
            self.store.save("alerts", live)
            self.store.save("groups", groups)
        return transitions, messages

    def _advance(
        self, alerts: dict[str, dict[str, Any]], findings: list[Finding], now: datetime
    ) -> list[Transition]:
        stamp = now.isoformat()
        changes: list[Transition] = []
        active = set()
        for f in findings:
            key = f.fingerprint
            if key in active:
                continue  # two monitors reported the same alert: it is one alert
            active.add(key)
            severity = self.cfg.severity.get(f.alertname, f.severity)
            alert = alerts.get(key)
            if alert is None or alert["state"] == "resolved":
                alert = {"fingerprint": key, "state": "pending", "active_since": stamp}
                alerts[key] = alert
                changes.append(Transition(now, "pending", alert))
            alert.update(
                alertname=f.alertname,
                labels={**f.labels, "alertname": f.alertname, "severity": severity},
                severity=severity,
                summary=f.summary,
                value=f.value,
                threshold=f.threshold,
            )
            since = datetime.fromisoformat(alert["active_since"])
            if alert["state"] == "pending" and now - since >= self.for_duration(f.alertname):
                alert.update(state="firing", fired_at=stamp)
                changes.append(Transition(now, "firing", alert))
        for key, alert in list(alerts.items()):
            if key in active:
                continue
            if alert["state"] == "pending":
                del alerts[key]
            elif alert["state"] == "firing":
                alert.update(state="resolved", resolved_at=stamp)
                changes.append(Transition(now, "resolved", alert))
        # Snapshot each transition's alert as it was at that moment.
        return [Transition(t.at, t.state, {**t.alert, "state": t.state}) for t in changes]

    def _group_key(self, alert: dict[str, Any]) -> str:
        labels = alert["labels"]
        return ",".join(f"{g}={labels.get(g, '')}" for g in self.cfg.group_by) or "all"

    def _notify(
        self,
        alerts: dict[str, dict[str, Any]],
        groups: dict[str, dict[str, Any]],
        transitions: list[Transition],
        now: datetime,
    ) -> list[dict[str, Any]]:
        members: dict[str, list[dict[str, Any]]] = {}
        for alert in alerts.values():
            if alert["state"] in ("firing", "resolved"):
                members.setdefault(self._group_key(alert), []).append(alert)
        messages = []
        repeat = timedelta(seconds=self.cfg.repeat_interval_seconds)
        for key, group_alerts in sorted(members.items()):
            state = groups.get(key, {"notified": [], "last_at": None})
            told = set(state["notified"])
            firing = [a for a in group_alerts if a["state"] == "firing"]
            resolved = [
                a for a in group_alerts if a["state"] == "resolved" and a["fingerprint"] in told
            ]
            new = [a for a in firing if a["fingerprint"] not in told]
            last = datetime.fromisoformat(state["last_at"]) if state["last_at"] else None
            due_again = bool(firing) and last is not None and now - last >= repeat
            if not (new or due_again or (resolved and self.cfg.send_resolved)):
                if not firing:
                    groups.pop(key, None)
                continue
            messages.append(self._message(key, firing + resolved, bool(firing), now))
            if firing:
                groups[key] = {
                    "notified": sorted(a["fingerprint"] for a in firing),
                    "last_at": now.isoformat(),
                }
            else:
                groups.pop(key, None)
        return messages

    def _message(
        self, key: str, members: list[dict[str, Any]], firing: bool, now: datetime
    ) -> dict[str, Any]:
        """An Alertmanager webhook (version 4) body, plus the channels it is routed to."""
        severity = max((a["severity"] for a in members), key=lambda s: SEVERITY_ORDER.get(s, 0))
        common = dict(members[0]["labels"])
        for a in members[1:]:
            common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
        group_labels = {g: common.get(g, "") for g in self.cfg.group_by}
        return {
            "version": "4",
            "groupKey": key,
            "status": "firing" if firing else "resolved",
            "receiver": severity,
            "groupLabels": group_labels,
            "commonLabels": common,
            "commonAnnotations": {},
            "externalURL": "",
            "truncatedAlerts": 0,
            "alerts": [
                {
                    "status": "resolved" if a["state"] == "resolved" else "firing",
                    "labels": a["labels"],
                    "annotations": {"summary": a["summary"]},
                    "startsAt": a["active_since"],
                    "endsAt": a.get("resolved_at") or "0001-01-01T00:00:00Z",
                    "fingerprint": a["fingerprint"],
                    "value": a.get("value"),
                }
                for a in sorted(members, key=lambda a: a["fingerprint"])
            ],
            "channels": list(self.cfg.routes.get(severity, ())),
            "sentAt": now.isoformat(),
        }
