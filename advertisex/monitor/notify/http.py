"""HTTP notifiers: a generic webhook (Alertmanager's JSON body) and Slack incoming webhooks.

The webhook body is exactly what Alertmanager POSTs to its webhook receivers (version
4), so anything that consumes those — incident tools, chat bridges, Alertmanager's own
relays — takes AdvertiseX alerts unchanged.
"""

from __future__ import annotations

from typing import Any

from advertisex.config import ChannelSettings
from advertisex.monitor.notify.base import DeliveryError, Notifier, text, title
from advertisex.util import jsonutil

_COLOURS = {"critical": "#d00000", "warning": "#e8a200", "info": "#3b7dd8"}


class WebhookNotifier(Notifier):
    kind = "webhook"

    def __init__(self, name: str, settings: ChannelSettings) -> None:
        super().__init__(name, settings)
        if settings.url is None:
            from advertisex.errors import ConfigError

            raise ConfigError(
                f"monitor channel {name!r} ({settings.kind}) needs a url",
                hint=f"set [monitor.channels.{name}] url = ...",
            )
        import httpx

        self._client = httpx.Client(timeout=settings.timeout_seconds)

    def render(self, message: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in message.items() if k not in ("channels", "sentAt")}
        return {**body, "receiver": self.name}

    def send(self, message: dict[str, Any]) -> None:
        import httpx

        assert self.settings.url is not None
        try:
            response = self._client.post(
                self.settings.url.get_secret_value(),
                content=jsonutil.dumps(self.render(message)),
                headers={"Content-Type": "application/json", **self.settings.headers},
            )
        except httpx.HTTPError as error:
            raise DeliveryError(f"{self.name}: {type(error).__name__}: {error}") from error
        if response.status_code >= 300:
            raise DeliveryError(f"{self.name}: HTTP {response.status_code} {response.text[:200]}")

    def close(self) -> None:
        self._client.close()


class SlackNotifier(WebhookNotifier):
    """Slack incoming webhook: a short text plus one coloured attachment per incident."""

    kind = "slack"

    def render(self, message: dict[str, Any]) -> dict[str, Any]:
        severity = message["receiver"]
        resolved = message["status"] == "resolved"
        return {
            "text": slack_text(title(message)),
            "attachments": [
                {
                    "color": "#2eb886" if resolved else _COLOURS.get(severity, "#888888"),
                    "title": slack_text(title(message)),
                    "text": slack_text(text(message).split("\n", 1)[-1]),
                    "footer": "AdvertiseX monitor",
                }
            ],
        }


def slack_text(plain: str) -> str:
    """``plain`` as Slack shows it as it is: its ``&``, ``<`` and ``>`` escaped, as Slack
    asks of message text. A summary may name what a producer sent (a new field's name,
    say), and Slack reads ``<!channel>`` as a mention of everyone in the channel and
    ``<https://…|text>`` as a link labelled as anything.

    >>> slack_text("new field '<!channel>' & <https://x.example|docs>")
    "new field '&lt;!channel&gt;' &amp; &lt;https://x.example|docs&gt;"
    """
    return plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
