"""The order event feed (issue 19): the log, its head counter, and the registered subscribers.

Additive only. `event_log_head` is one row whose `position` every appending transaction bumps: the
row lock orders appends by commit, so positions are gap-free in commit order (see
server/adapters/event_log.py for why a sequence would not do).
"""

from peewee import *


def up(migrator, db):
    class EventLogRow(Model):
        position = BigIntegerField(primary_key=True)
        type = CharField(max_length=32)
        account = CharField(max_length=64, default="default")
        order_id = CharField(max_length=40, index=True)
        occurred_at = DateTimeField(index=True)
        payload = BlobField()

        class Meta:
            database = db
            table_name = "event_log"

    class EventLogHeadRow(Model):
        id = IntegerField(primary_key=True)
        position = BigIntegerField(default=0)

        class Meta:
            database = db
            table_name = "event_log_head"

    class EventSubscriberRow(Model):
        name = CharField(max_length=64, unique=True)
        acked_position = BigIntegerField(default=0)
        registered_at = DateTimeField()
        acked_at = DateTimeField(null=True)
        last_seen_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "event_subscribers"

    db.create_tables([EventLogRow, EventLogHeadRow, EventSubscriberRow])
    EventLogHeadRow.insert(id=1, position=0).on_conflict_ignore().execute()


def down(migrator, db):
    for table in ("event_subscribers", "event_log_head", "event_log"):
        migrator.migrate(migrator.drop_table(table))
