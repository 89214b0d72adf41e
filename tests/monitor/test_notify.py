"""Notifiers render what their channel expects; the outbox retries with backoff, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from advertisex.config import ChannelSettings, MonitorSettings
from advertisex.errors import ConfigError
from advertisex.monitor.alerts import AlertEngine
from advertisex.monitor.model import Finding
from advertisex.monitor.notify.base import make_notifier, text, title
from advertisex.monitor.notify.delivery import Delivery
from advertisex.monitor.notify.simple import MemoryNotifier
from advertisex.monitor.notify.sns import SnsNotifier
from advertisex.monitor.state import StateStore
from advertisex.synth.monitor_sim import SimClock

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def message(channels: tuple[str, ...] = ("memory",)) -> dict[str, Any]:
    cfg = MonitorSettings(routes={"critical": channels})
    finding = Finding("SourceStale", {"source": "bids"}, "critical", "no bids for 20 min", 1200.0)
    return AlertEngine(cfg, StateStore(None)).update([finding], T0)[1][0]


def test_webhook_body_is_alertmanagers_and_slack_is_text() -> None:
    settings = ChannelSettings(kind="webhook", url=SecretStr("http://127.0.0.1:9/x"))
    body = make_notifier("ops", settings).render(message())
    assert body["version"] == "4" and body["receiver"] == "ops" and body["status"] == "firing"
    assert set(body) >= {"groupKey", "groupLabels", "commonLabels", "alerts", "externalURL"}
    assert "channels" not in body
    assert body["alerts"][0]["labels"] == {
        "source": "bids",
        "alertname": "SourceStale",
        "severity": "critical",
    }
    slack = make_notifier("chat", settings.model_copy(update={"kind": "slack"})).render(message())
    assert slack["text"] == "[FIRING:1] critical source=bids"
    assert "no bids for 20 min" in slack["attachments"][0]["text"]
    assert title(message()) in text(message())


def test_slack_shows_a_producers_text_instead_of_mentioning_or_linking() -> None:
    """A summary may hold what a producer sent — schema drift names each new field — and
    Slack reads ``<!channel>`` in a message as a mention of everyone, ``<url|label>`` as a
    link: escaped, as Slack asks, the text is shown as it is."""
    cfg = MonitorSettings(routes={"info": ("chat",)})
    field = "<!channel> & <https://evil.example|click>"
    finding = Finding("SchemaDrift", {"source": "impressions"}, "info", f"new field {field!r}", 1.0)
    sent = AlertEngine(cfg, StateStore(None)).update([finding], T0)[1][0]
    settings = ChannelSettings(kind="slack", url=SecretStr("http://127.0.0.1:9/x"))
    body = make_notifier("chat", settings).render(sent)
    shown = body["attachments"][0]["text"]
    assert "<" not in shown and ">" not in shown and "&lt;!channel&gt; &amp; &lt;https" in shown
    webhook = make_notifier("ops", settings.model_copy(update={"kind": "webhook"})).render(sent)
    assert webhook["alerts"][0]["annotations"]["summary"] == f"new field {field!r}"  # JSON: whole


def test_email_and_sns_render_subject_and_text() -> None:
    mail = make_notifier(
        "mail", ChannelSettings(kind="email", mail_to=("a@example.com", "b@example.com"))
    ).render(message())
    assert mail["To"] == "a@example.com, b@example.com"
    assert mail["Subject"] == "AdvertiseX [FIRING:1] critical source=bids"

    class FakeSns:
        def __init__(self) -> None:
            self.published: list[dict[str, Any]] = []

        def publish(self, **kwargs: Any) -> None:
            self.published.append(kwargs)

    client = FakeSns()
    sns = SnsNotifier("aws", ChannelSettings(kind="sns", topic_arn="arn:aws:sns:x:1:t"), client)
    sns.send(message())
    (published,) = client.published
    assert published["TopicArn"] == "arn:aws:sns:x:1:t" and len(published["Subject"]) <= 100
    assert published["MessageAttributes"]["severity"]["StringValue"] == "critical"


def test_every_text_channel_shows_a_producers_control_characters_as_escapes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only the processor's error was escaped (where the follower records it): a file name
    or a field a producer chose reached the log channel's terminal as it was — ``\x1b[31m``
    turned the log red, ``\r`` wrote over the line, a line break forged an alert line — and
    a carriage return in a grouping label made the email channel fail for a day."""
    import logging

    cfg = MonitorSettings(routes={"info": ("log",)}, group_by=("source", "field"))
    file = "impressions/2026-11-20/12/seg\x1b[31m.json\rall clear\n✔ Fake [info]: fixed"
    finding = Finding(
        "SchemaNewField",
        {"source": "impressions", "field": "f\x1b]0;x\x07\r\nBcc: x@example.com"},
        "info",
        f"new field in {file}",
        1.0,
    )
    sent = AlertEngine(cfg, StateStore(None)).update([finding], T0)[1][0]
    with caplog.at_level(logging.INFO, logger="advertisex.alerts"):
        make_notifier("log", ChannelSettings(kind="log")).send(sent)
    (logged,) = [r.getMessage() for r in caplog.records if r.name == "advertisex.alerts"]
    assert "\x1b" not in logged and "\r" not in logged and "\x07" not in logged
    assert len(logged.splitlines()) == 2  # the title and the one alert: nothing forged
    assert "seg\\x1b[31m.json\\x0dall clear\\n✔ Fake" in logged
    assert "field=f\\x1b]0;x\\x07\\x0d\\nBcc" in logged
    mail = make_notifier("mail", ChannelSettings(kind="email", mail_to=("a@example.com",)))
    rendered = mail.render(sent)  # was: ValueError, a header holding a line break
    assert "\\x1b" in rendered["Subject"] and "Bcc" not in rendered
    assert "\x1b" not in rendered.get_content()
    webhook = ChannelSettings(kind="webhook", url=SecretStr("http://127.0.0.1:9/x"))
    body = make_notifier("ops", webhook).render(sent)
    assert body["alerts"][0]["annotations"]["summary"] == f"new field in {file}"  # JSON: whole


def test_misconfigured_channels_say_what_to_set() -> None:
    with pytest.raises(ConfigError, match="unknown kind"):
        make_notifier("x", ChannelSettings(kind="pigeon"))
    with pytest.raises(ConfigError, match="needs a url"):
        make_notifier("x", ChannelSettings(kind="webhook"))
    with pytest.raises(ConfigError, match="no recipients"):
        make_notifier("x", ChannelSettings(kind="email"))
    with pytest.raises(ConfigError, match="topic_arn"):
        make_notifier("x", ChannelSettings(kind="sns"))


def test_a_failing_channel_is_retried_with_backoff_and_keeps_order() -> None:
    clock = SimClock(T0)
    cfg = MonitorSettings(retry_base_seconds=10, retry_max_seconds=40)
    flaky, steady = MemoryNotifier("flaky"), MemoryNotifier("steady")
    flaky.fail_next = 3
    delivery = Delivery(StateStore(None), {"flaky": flaky, "steady": steady}, cfg, clock)
    first, second = message(("flaky", "steady")), message(("flaky", "steady"))
    second["groupKey"] = "second"
    delivery.submit(first)
    delivery.submit(second)
    assert delivery.drain() == 2  # steady took both; flaky failed its first
    waits = []
    while not flaky.sent:
        before = flaky.attempts
        delivery.drain()
        if flaky.attempts > before:
            waits.append(clock())
        clock.advance(timedelta(seconds=1))
    gaps = [(b - a).total_seconds() for a, b in zip([T0, *waits], waits, strict=False)]
    assert gaps == [10, 20, 40]  # doubling from the base, capped at the maximum
    delivery.drain()
    assert [m["groupKey"] for m in flaky.sent] == [first["groupKey"], "second"]


def test_an_undeliverable_message_is_given_up_after_its_maximum_age() -> None:
    clock = SimClock(T0)
    cfg = MonitorSettings(retry_base_seconds=60, retry_max_seconds=60, retry_max_age_seconds=300)
    dead = MemoryNotifier("dead")
    dead.fail_next = 10**6
    delivery = Delivery(StateStore(None), {"dead": dead}, cfg, clock)
    delivery.submit(message(("dead", "nowhere")))
    for _ in range(10):
        delivery.drain()
        clock.advance(timedelta(seconds=61))
    rows = delivery.store.outbox()
    assert [r["failed_at"] is not None for r in rows] == [True, True]
    assert rows[1]["error"] == "no such channel configured"
    assert 5 <= rows[0]["attempts"] <= 7


def test_background_delivery_does_not_block_the_caller() -> None:
    import threading

    gate = threading.Event()

    class Slow(MemoryNotifier):
        def send(self, message: dict[str, Any]) -> None:
            gate.wait(10)
            super().send(message)

    slow = Slow("slow")
    delivery = Delivery(StateStore(None), {"slow": slow}, MonitorSettings())
    delivery.start(poll_seconds=0.01)
    try:
        delivery.submit(message(("slow",)))  # returns although the channel hangs
        assert slow.sent == []
        gate.set()
        for _ in range(1000):
            if slow.sent:
                break
            threading.Event().wait(0.01)
        assert len(slow.sent) == 1
    finally:
        delivery.stop()
