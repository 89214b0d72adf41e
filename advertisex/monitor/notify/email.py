"""Email over SMTP (smtplib from the standard library), optionally with STARTTLS and login."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

from advertisex.config import ChannelSettings
from advertisex.monitor.notify.base import DeliveryError, Notifier, text, title


class EmailNotifier(Notifier):
    kind = "email"

    def __init__(self, name: str, settings: ChannelSettings) -> None:
        super().__init__(name, settings)
        if not settings.mail_to:
            from advertisex.errors import ConfigError

            raise ConfigError(
                f"monitor channel {name!r} (email) has no recipients",
                hint=f'set [monitor.channels.{name}] mail_to = ["ops@example.com"]',
            )

    def render(self, message: dict[str, Any]) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = "AdvertiseX " + title(message)
        mail["From"] = self.settings.mail_from
        mail["To"] = ", ".join(self.settings.mail_to)
        mail.set_content(text(message) + "\n")
        return mail

    def send(self, message: dict[str, Any]) -> None:
        s = self.settings
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.timeout_seconds) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_user and s.smtp_password:
                    smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
                smtp.send_message(self.render(message))
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"{self.name}: {type(error).__name__}: {error}") from error
