"""AWS SNS (the reference architecture's alarm channel); needs the ``aws`` extra (boto3)."""

from __future__ import annotations

from typing import Any

from advertisex.config import ChannelSettings
from advertisex.errors import ConfigError
from advertisex.monitor.notify.base import DeliveryError, Notifier, text, title


class SnsNotifier(Notifier):
    kind = "sns"

    def __init__(self, name: str, settings: ChannelSettings, client: Any = None) -> None:
        super().__init__(name, settings)
        if not settings.topic_arn:
            raise ConfigError(
                f"monitor channel {name!r} (sns) needs a topic_arn",
                hint=f'set [monitor.channels.{name}] topic_arn = "arn:aws:sns:…"',
            )
        if client is None:
            try:
                import boto3
            except ImportError as error:
                raise ConfigError(
                    "the sns channel needs boto3", hint="pip install 'advertisex[aws]'"
                ) from error
            client = boto3.client("sns", region_name=settings.region)
        self._client = client

    def render(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "TopicArn": self.settings.topic_arn,
            "Subject": ("AdvertiseX " + title(message))[:100],  # SNS subject limit
            "Message": text(message),
            "MessageAttributes": {
                "severity": {"DataType": "String", "StringValue": message["receiver"]},
                "status": {"DataType": "String", "StringValue": message["status"]},
            },
        }

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._client.publish(**self.render(message))
        except Exception as error:  # botocore's errors: network, throttling, credentials
            raise DeliveryError(f"{self.name}: {type(error).__name__}: {error}") from error
