"""Notifiers: a small interface, a registry of kinds, and the text every channel shares.

A notifier turns one message (the Alertmanager-compatible dict built by
:mod:`advertisex.monitor.alerts`) into a delivery. ``send`` raises
:class:`DeliveryError` when the channel is unreachable; the outbox
(:mod:`advertisex.monitor.notify.delivery`) retries it later with backoff. Heavy or
optional libraries (httpx, smtplib, boto3) are imported by the kinds that need them.

The text every channel shares (:func:`title`, :func:`text`: the log, email, SNS and Slack
channels) shows what an alert says with its control characters and line breaks escaped
(:func:`said`): a summary or a label may quote what a producer sent — a field's name, a
file's, an error's text — and a log channel writes it to a terminal. A webhook's body is
the message itself, as JSON, which escapes them anyway.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any

from advertisex.config import ChannelSettings
from advertisex.errors import TransientError
from advertisex.util.text import shown


class DeliveryError(TransientError):
    """The channel did not take the message; retrying later may succeed."""

    code = "delivery_failed"


class Notifier(ABC):
    """One channel. ``render`` is pure (what would be sent); ``send`` does the I/O."""

    kind = "abstract"

    def __init__(self, name: str, settings: ChannelSettings) -> None:
        self.name = name
        self.settings = settings

    @abstractmethod
    def render(self, message: dict[str, Any]) -> Any:
        """The body this channel sends for ``message`` (bytes, text or a dict)."""

    @abstractmethod
    def send(self, message: dict[str, Any]) -> None:
        """Deliver ``message`` or raise :class:`DeliveryError`."""

    def close(self) -> None:  # noqa: B027 - optional hook, most channels hold nothing
        """Release connections; the default has none."""


# kind → "module:Class", imported on first use.
KINDS: dict[str, str] = {
    "log": "advertisex.monitor.notify.simple:LogNotifier",
    "memory": "advertisex.monitor.notify.simple:MemoryNotifier",
    "webhook": "advertisex.monitor.notify.http:WebhookNotifier",
    "slack": "advertisex.monitor.notify.http:SlackNotifier",
    "email": "advertisex.monitor.notify.email:EmailNotifier",
    "sns": "advertisex.monitor.notify.sns:SnsNotifier",
}


def make_notifier(name: str, settings: ChannelSettings) -> Notifier:
    """The notifier for channel ``name``; an unknown kind is a configuration error."""
    from advertisex.errors import ConfigError

    target = KINDS.get(settings.kind)
    if target is None:
        raise ConfigError(
            f"monitor channel {name!r} has unknown kind {settings.kind!r}",
            hint=f"use one of {', '.join(sorted(KINDS))}",
        )
    module, cls = target.split(":")
    factory: type[Notifier] = getattr(importlib.import_module(module), cls)
    return factory(name, settings)


def title(message: dict[str, Any]) -> str:
    """``[FIRING:2] critical source=impressions`` — one line naming the incident; by its
    alerts' names when they have none of the grouping labels (a table's alert).

    >>> alert = {"status": "firing", "labels": {"alertname": "LakeFilesDamaged"}}
    >>> title({"alerts": [alert], "status": "firing", "receiver": "critical",
    ...        "groupLabels": {"source": ""}, "groupKey": "source="})
    '[FIRING:1] critical LakeFilesDamaged'
    """
    alerts = message["alerts"]
    firing = sum(a["status"] == "firing" for a in alerts)
    status = f"FIRING:{firing}" if message["status"] == "firing" else "RESOLVED"
    labels = " ".join(f"{said(k)}={said(v)}" for k, v in message["groupLabels"].items() if v)
    if not labels:
        labels = ", ".join(sorted({said(a["labels"].get("alertname")) for a in alerts}))
    return f"[{status}] {said(message['receiver'])} {labels or said(message['groupKey'])}".strip()


def text(message: dict[str, Any]) -> str:
    """The incident as plain text: title, then one line per alert."""
    lines = [title(message)]
    for a in message["alerts"]:
        mark = "✔" if a["status"] == "resolved" else "●"
        lines.append(
            f"{mark} {said(a['labels'].get('alertname'))} [{said(a['labels'].get('severity'))}]: "
            f"{said(a['annotations'].get('summary', ''))}"
        )
    return "\n".join(lines)


def said(value: object) -> str:
    r"""One thing an alert says (a label, a summary) as a terminal should show it: control
    characters as escapes (``util.text.shown``, as the CLI shows them), and its line breaks
    and tabs too — one alert is one line, which a quoted line break would forge.

    >>> said("seg\x1b[31m.json\rok\n● Fake")
    'seg\\x1b[31m.json\\x0dok\\n● Fake'
    """
    return shown(str(value)).replace("\n", "\\n").replace("\t", "\\t")
