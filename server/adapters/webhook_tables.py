"""The webhook table (migration 0011), beside its store rather than in tables.py: the feature's schema
in one place (as recon_tables.py does)."""

from __future__ import annotations

import peewee as pw

from server.adapters.tables import BaseModel


class WebhookRow(BaseModel):
    subscriber = pw.CharField(max_length=64, unique=True)  # event_subscribers.name
    url = pw.CharField(max_length=2048)
    # HMAC keys must be kept in the clear to sign with; the database is as sensitive as the order data
    # the webhooks carry (SECURITY.md). A rotated-out key signs too until previous_until.
    secret = pw.CharField(max_length=128)
    previous_secret = pw.CharField(max_length=128, null=True)
    previous_until = pw.DateTimeField(null=True)
    state = pw.CharField(max_length=16, default="ACTIVE")  # ACTIVE | DISABLED
    consecutive_failures = pw.IntegerField(default=0)
    failing_since = pw.DateTimeField(null=True)  # the first failure since the last success
    last_success_at = pw.DateTimeField(null=True)
    last_error = pw.CharField(max_length=255, default="")
    last_error_at = pw.DateTimeField(null=True)
    next_attempt_at = pw.DateTimeField(null=True)  # back-off: not before this; None = as soon as due
    disabled_at = pw.DateTimeField(null=True)
    lease_owner = pw.CharField(max_length=32, null=True)  # the sender delivering right now
    lease_until = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField()

    class Meta:
        table_name = "event_webhooks"
