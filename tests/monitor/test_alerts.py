"""Alert lifecycle (pending → firing → resolved), grouping, repeats, routing, persistence."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from advertisex.config import MonitorSettings
from advertisex.monitor.alerts import AlertEngine
from advertisex.monitor.model import Finding
from advertisex.monitor.state import StateStore

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def stale(source: str = "impressions", severity: str = "critical") -> Finding:
    return Finding("SourceStale", {"source": source}, severity, f"no {source}", 1200.0, 900.0)


def engine(**overrides: object) -> AlertEngine:
    cfg = MonitorSettings(
        routes={"critical": ("pager", "chat"), "warning": ("chat",), "info": ("log",)},
        **overrides,  # type: ignore[arg-type]
    )
    return AlertEngine(cfg, StateStore(None))


def test_pending_for_its_duration_then_firing_then_resolved() -> None:
    e = engine(for_seconds={"SourceStale": 300})
    changes, messages = e.update([stale()], T0)
    assert [c.state for c in changes] == ["pending"] and messages == []
    changes, messages = e.update([stale()], T0 + 4 * MIN)
    assert changes == [] and messages == []
    changes, messages = e.update([stale()], T0 + 5 * MIN)
    assert [c.state for c in changes] == ["firing"]
    (message,) = messages
    assert message["status"] == "firing" and message["channels"] == ["pager", "chat"]
    assert message["alerts"][0]["startsAt"] == T0.isoformat()
    changes, messages = e.update([], T0 + 9 * MIN)
    assert [c.state for c in changes] == ["resolved"]
    assert messages[0]["status"] == "resolved"
    assert messages[0]["alerts"][0]["endsAt"] == (T0 + 9 * MIN).isoformat()
    assert e.store.load("alerts") == {} and e.store.load("groups") == {}


def test_a_pending_alert_that_clears_is_dropped_silently() -> None:
    e = engine(for_seconds={"SourceStale": 300})
    e.update([stale()], T0)
    changes, messages = e.update([], T0 + MIN)
    assert changes == [] and messages == []
    assert e.store.load("alerts") == {}


def test_one_incident_one_message_and_a_repeat_while_it_lasts() -> None:
    e = engine(repeat_interval_seconds=3600)
    other = Finding("VolumeAnomaly", {"source": "impressions"}, "warning", "dropped")
    _, messages = e.update([stale(), other], T0)
    (message,) = messages  # both alerts share source=impressions: one message
    assert message["groupLabels"] == {"source": "impressions"}
    assert {a["labels"]["alertname"] for a in message["alerts"]} == {"SourceStale", "VolumeAnomaly"}
    assert message["receiver"] == "critical"  # routed by the most severe alert in it
    assert e.update([stale(), other], T0 + 30 * MIN)[1] == []  # nothing new: silence
    repeat = e.update([stale(), other], T0 + 60 * MIN)[1]
    assert len(repeat) == 1 and repeat[0]["status"] == "firing"
    # A different source is another incident.
    _, messages = e.update([stale(), other, stale("bids")], T0 + 61 * MIN)
    assert [m["groupKey"] for m in messages] == ["source=bids"]


def test_an_alert_joining_an_incident_and_one_leaving_it_are_told() -> None:
    e = engine()
    e.update([stale()], T0)
    joined = Finding("VolumeAnomaly", {"source": "impressions"}, "warning", "dropped")
    _, messages = e.update([stale(), joined], T0 + MIN)
    assert len(messages) == 1 and len(messages[0]["alerts"]) == 2
    _, messages = e.update([stale()], T0 + 2 * MIN)
    (message,) = messages  # still firing, with the resolved member marked so
    assert message["status"] == "firing"
    assert {a["status"] for a in message["alerts"]} == {"firing", "resolved"}


def test_duplicate_findings_are_one_alert_and_severity_can_be_overridden() -> None:
    e = engine(severity={"SourceStale": "info"})
    changes, messages = e.update([stale(), stale()], T0)
    assert [c.state for c in changes] == ["pending", "firing"]
    assert messages[0]["channels"] == ["log"] and messages[0]["receiver"] == "info"


def test_state_survives_a_restart(tmp_path: Path) -> None:
    cfg = MonitorSettings()
    path = tmp_path / "state.db"
    AlertEngine(cfg, StateStore(path)).update([stale()], T0)
    again = AlertEngine(cfg, StateStore(path))
    changes, messages = again.update([stale()], T0 + MIN)
    assert changes == [] and messages == []  # already firing and told: no second message
    changes, messages = again.update([], T0 + 2 * MIN)
    assert [c.state for c in changes] == ["resolved"] and len(messages) == 1


def test_a_lost_race_on_ops_alerts_is_retried_not_dropped() -> None:
    """Maintenance is a second writer of ops.alerts: an evaluation's history that loses a
    commit race is appended again on fresh metadata."""
    from advertisex.errors import CommitConflictError
    from advertisex.monitor.service import lake_history

    class Lake:
        refreshed, committed = 0, 0

        def refresh(self) -> None:
            self.refreshed += 1

        def commit_batch(self, tables: dict, segments: list, accounts: dict) -> None:
            if self.refreshed == 1:
                raise CommitConflictError("table metadata moved on")
            self.committed += 1

    lake = Lake()
    lake_history(lake)([])
    assert (lake.refreshed, lake.committed) == (2, 1)


def test_an_unreachable_bucket_is_one_log_line_an_evaluation_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With its landing zone's bucket down, the monitor daemon tries again every interval:
    each failed evaluation is one line saying what to check, not a traceback (a bug's
    still is)."""
    import threading

    from advertisex.monitor.service import Monitor

    stop = threading.Event()
    failures = [
        OSError("When listing objects in bucket 'b': AWS Error NETWORK_CONNECTION during"),
        ValueError("a bug"),
    ]

    def observe() -> Any:
        error = failures.pop(0)
        if not failures:
            stop.set()
        raise error

    monitor = Monitor(MonitorSettings(), observe, notifiers={})
    with caplog.at_level(logging.ERROR, logger="advertisex.monitor"):
        monitor.run(stop, interval=0.01)
    unreachable, bug = caplog.records
    assert unreachable.exc_info is None
    assert "AWS Error NETWORK_CONNECTION" in unreachable.getMessage()
    assert "scale.s3_endpoint" in unreachable.getMessage()
    assert bug.exc_info is not None  # a bug keeps its traceback


def test_a_monitor_that_cannot_observe_the_lake_raises_its_own_alert_and_holds_the_others() -> None:
    """A bucket down for an hour was a log line a minute and no alert: the monitor, the
    one meant to tell, stayed silent. Now MonitorFailed {monitor="observe"} fires through
    the routes like any alert; the alerts already firing are held (nothing is known to
    have cleared) and the next evaluation that sees resolves the blind one."""
    from advertisex.monitor.model import Observations
    from advertisex.monitor.service import Monitor

    now = [T0]
    cfg = MonitorSettings(
        routes={"critical": ("chat",), "warning": ("chat",)},
        for_seconds={"MonitorFailed": 0, "SourceStale": 0},
    )
    sent: list[dict[str, Any]] = []

    class Chat:
        def send(self, message: dict[str, Any]) -> None:
            sent.append(message)

    monitor = Monitor(cfg, lambda: Observations(now=now[0]), notifiers={"chat": Chat()},
                      clock=lambda: now[0])  # fmt: skip
    monitor.engine.update([stale()], T0)  # firing already
    now[0] = T0 + MIN
    monitor.blind("When listing objects in bucket 'b': AWS Error NETWORK_CONNECTION")
    firing = {a["alertname"]: a for a in monitor.firing()}
    assert set(firing) == {"SourceStale", "MonitorFailed"}
    assert firing["SourceStale"]["state"] == "firing"  # held, not resolved
    assert firing["MonitorFailed"]["state"] == "firing"
    assert "cannot observe the lake" in firing["MonitorFailed"]["summary"]
    assert firing["MonitorFailed"]["labels"]["monitor"] == "observe"
    monitor.delivery.drain()
    assert any(a["labels"]["alertname"] == "MonitorFailed" for m in sent for a in m["alerts"])
    now[0] = T0 + 2 * MIN
    monitor.blind("still down")  # a second blind evaluation: the same alert, held
    assert {a["alertname"] for a in monitor.firing()} == {"SourceStale", "MonitorFailed"}
    now[0] = T0 + 3 * MIN
    transitions, _ = monitor.engine.update([stale()], now[0])  # a seeing evaluation
    assert [(t.state, t.alert["alertname"]) for t in transitions] == [("resolved", "MonitorFailed")]


def test_a_failed_evaluation_of_unreadable_storage_tells_the_alerting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import threading

    from advertisex.monitor.service import Monitor

    stop = threading.Event()

    def observe() -> Any:
        stop.set()
        raise OSError("When listing objects in bucket 'b': AWS Error NETWORK_CONNECTION")

    cfg = MonitorSettings(for_seconds={"MonitorFailed": 0})
    monitor = Monitor(cfg, observe, notifiers={})
    with caplog.at_level(logging.ERROR, logger="advertisex.monitor"):
        monitor.run(stop, interval=0.01)
    (alert,) = monitor.firing()
    assert alert["alertname"] == "MonitorFailed" and alert["state"] == "firing"
