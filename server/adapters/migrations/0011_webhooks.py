"""Signed webhooks for event-feed subscribers (issue 19 item 4): at most one per subscriber.

Additive only: a new table keyed by the subscriber's name. Delivery progress is the subscriber's own
acknowledged position (event_subscribers.acked_position): a 2xx from the webhook is the ack.
"""

from peewee import *


def up(migrator, db):
    class WebhookRow(Model):
        subscriber = CharField(max_length=64, unique=True)
        url = CharField(max_length=2048)
        secret = CharField(max_length=128)
        previous_secret = CharField(max_length=128, null=True)
        previous_until = DateTimeField(null=True)
        state = CharField(max_length=16, default="ACTIVE")
        consecutive_failures = IntegerField(default=0)
        failing_since = DateTimeField(null=True)
        last_success_at = DateTimeField(null=True)
        last_error = CharField(max_length=255, default="")
        last_error_at = DateTimeField(null=True)
        next_attempt_at = DateTimeField(null=True)
        disabled_at = DateTimeField(null=True)
        lease_owner = CharField(max_length=32, null=True)
        lease_until = DateTimeField(null=True)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "event_webhooks"

    db.create_tables([WebhookRow])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("event_webhooks"))
