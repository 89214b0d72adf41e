"""Fault scenarios on a simulated week, with notifications through real receivers.

Each scenario injects one fault at T (day 8, 10:00 UTC, after a week of clean
history), evaluates every 5 simulated minutes around it, and checks that the right
alert fired and reached a real receiver (HTTP for webhook/Slack, aiosmtpd for email).
Times are the simulated clock's: no assertion depends on how fast this machine is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from advertisex.config import ChannelSettings, MonitorSettings
from advertisex.monitor.model import HOUR
from advertisex.monitor.notify.base import make_notifier
from advertisex.monitor.notify.simple import MemoryNotifier
from advertisex.synth.drill import drill, inject
from advertisex.synth.monitor_sim import Simulation

START = datetime(2026, 11, 1, tzinfo=UTC)
T = START + timedelta(days=8, hours=10)
STEP = timedelta(minutes=5)


def settings(**channels: ChannelSettings) -> MonitorSettings:
    names = tuple(channels) or ("memory",)
    return MonitorSettings(
        routes={"critical": names, "warning": names, "info": names},
        channels=channels or {"memory": ChannelSettings(kind="memory")},
    )


def run(scenario: str, cfg: MonitorSettings, notifiers: dict[str, Any], hours: int = 4) -> Any:
    sim = Simulation(START, days=10, seed=11)
    expected = inject(sim, scenario, T)
    result = drill(sim, cfg, T - HOUR, T + timedelta(hours=hours), STEP, notifiers)
    return expected, result


def webhook(url: str, kind: str = "webhook") -> ChannelSettings:
    return ChannelSettings(kind=kind, url=SecretStr(url))


def test_source_stops_fires_within_its_window_and_resolves(http_receiver: Any) -> None:
    cfg = settings(ops=webhook(http_receiver.url + "/hook"))
    notifiers = {"ops": make_notifier("ops", cfg.channels["ops"])}
    expected, result = run("source stops", cfg, notifiers)
    window = timedelta(seconds=cfg.freshness_seconds["impressions"])
    assert expected in result.fired
    assert result.delivered[expected] - T <= window + 2 * STEP
    assert T + 2 * HOUR < result.resolved[expected] <= T + 2 * HOUR + 2 * STEP
    bodies = http_receiver.on("/hook")
    assert bodies[0]["status"] == "firing" and bodies[0]["version"] == "4"
    assert bodies[0]["groupLabels"] == {"source": "impressions"}
    assert bodies[-1]["status"] == "resolved"
    # One incident, one message: the stop also trips volume checks, all in the same group.
    firing = [b for b in bodies if b["status"] == "firing"]
    assert len({b["groupKey"] for b in firing}) == 1
    assert any(a["labels"]["alertname"] == "SourceStale" for a in firing[0]["alerts"])


def test_volume_drop_by_half_for_an_hour_is_an_anomaly(http_receiver: Any) -> None:
    cfg = settings(chat=webhook(http_receiver.url + "/slack", "slack"))
    notifiers = {"chat": make_notifier("chat", cfg.channels["chat"])}
    expected, result = run("volume drops 50 % for an hour", cfg, notifiers)
    assert expected == "VolumeAnomaly"
    # Judged once the hour is complete and settled: at most 1 h + settle + a step later.
    assert result.delivered[expected] - T <= HOUR + timedelta(seconds=cfg.settle_seconds) + STEP
    slack = http_receiver.on("/slack")
    # Volume, campaign volumes and bids per impression: one incident, one message (then
    # one when the next hour is normal again).
    assert [m["text"].split("]")[0] for m in slack] == ["[FIRING:11", "[RESOLVED"]
    assert "source=impressions" in slack[0]["text"]
    assert "VolumeAnomaly" in slack[0]["attachments"][0]["text"]


def test_malformed_burst_raises_quarantine_rate_by_email(smtp: Any) -> None:
    box, port = smtp
    cfg = settings(
        mail=ChannelSettings(
            kind="email", smtp_host="127.0.0.1", smtp_port=port, mail_to=("ops@example.com",)
        )
    )
    notifiers = {"mail": make_notifier("mail", cfg.channels["mail"])}
    expected, result = run("malformed burst", cfg, notifiers, hours=2)
    assert result.delivered[expected] - T <= 2 * STEP
    subjects = [m["Subject"] for m in box.messages]
    assert any("source=bids" in s for s in subjects)
    assert any("QuarantineRateHigh" in m.get_payload() for m in box.messages)


def test_duplicate_storm_raises_duplicate_rate() -> None:
    memory = MemoryNotifier("memory")
    expected, result = run("duplicate storm", settings(), {"memory": memory}, hours=2)
    assert result.delivered[expected] - T <= 2 * STEP
    # The repeats also inflate the hour's landed volume; both belong to the one source.
    assert set(result.fired) <= {"DuplicateRateHigh", "VolumeAnomaly"}
    assert {m["groupKey"] for m in memory.sent} == {"source=impressions"}


def test_clicks_without_impressions_raise_a_discrepancy() -> None:
    memory = MemoryNotifier("memory")
    expected, result = run("clicks without impressions", settings(), {"memory": memory})
    assert expected == "OrphanClicks"
    assert result.delivered[expected] - T <= HOUR + timedelta(minutes=15) + STEP
    assert set(result.fired) == {"OrphanClicks"}


def test_an_alert_reaches_a_webhook_that_was_down_once_it_returns(http_receiver: Any) -> None:
    cfg = settings(ops=webhook(http_receiver.url + "/hook")).model_copy(
        update={"retry_base_seconds": 30.0, "retry_max_seconds": 120.0}
    )
    notifiers = {"ops": make_notifier("ops", cfg.channels["ops"])}
    back_at = T + timedelta(minutes=45)
    http_receiver.down = True

    def outage(now: datetime) -> None:
        http_receiver.down = now < back_at

    sim = Simulation(START, days=10, seed=11)
    inject(sim, "source stops", T)
    result = drill(sim, cfg, T - HOUR, T + HOUR, STEP, notifiers, between=outage)
    assert http_receiver.refused >= 2  # it was tried while down, more than once
    assert back_at <= result.delivered["SourceStale"] <= back_at + STEP
    assert http_receiver.on("/hook")[0]["alerts"][0]["labels"]["alertname"] == "SourceStale"


@pytest.mark.slow
def test_a_clean_simulated_week_raises_no_alert() -> None:
    """False positives over 7 simulated days (after 7 days of history), every 15 minutes."""
    sim = Simulation(START, days=14, seed=5)
    memory = MemoryNotifier("memory")
    result = drill(
        sim,
        settings(),
        START + timedelta(days=7),
        START + timedelta(days=14),
        timedelta(minutes=15),
        {"memory": memory},
    )
    assert result.evaluations == 7 * 24 * 4
    print(f"false positives over a clean week: {result.firing_transitions}")
    assert result.firing_transitions == 0, result.fired
    assert memory.sent == []
