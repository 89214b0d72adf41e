"""Notification channels (log, webhook, Slack, email, SNS) and the retrying outbox."""
