"""Initial schema (frozen copy of server/adapters/tables.py as of this migration)."""

from peewee import *


def up(migrator, db):
    class FulfilmentRow(Model):
        order_id = CharField(unique=True, max_length=40)
        kind = CharField(max_length=16)
        status = CharField(max_length=16)
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField()
        last_error = TextField(default="")
        version = BigIntegerField(default=1)
        created_at = DateTimeField()
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = "fulfilments"
            indexes = ((("status", "next_attempt_at"), False),)

    db.create_tables([FulfilmentRow])

    class GrantRow(Model):
        order_id = CharField(unique=True, max_length=40)
        user_id = CharField(index=True, max_length=64)
        kind = CharField(max_length=16)
        article_id = CharField(null=True, max_length=64)
        days = IntegerField(default=0)
        state = CharField(max_length=24)
        created_at = DateTimeField()
        revoked_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "grants"

    db.create_tables([GrantRow])

    class MembershipRow(Model):
        user_id = CharField(unique=True, max_length=64)
        expires_at = DateTimeField()
        version = BigIntegerField(default=1)
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = "memberships"

    db.create_tables([MembershipRow])

    class NotificationRow(Model):
        notification_id = CharField(unique=True, max_length=64)
        event_type = CharField(max_length=32)
        headers = TextField()
        body = TextField()
        status = CharField(index=True, max_length=16)
        outcome = CharField(max_length=32, default="")
        attempts = IntegerField(default=0)
        received_at = DateTimeField()
        processed_at = DateTimeField(null=True)
        version = BigIntegerField(default=1)

        class Meta:
            database = db
            table_name = "notifications"

    db.create_tables([NotificationRow])

    class OrderEventRow(Model):
        order_id = CharField(index=True, max_length=40)
        field = CharField(max_length=16)
        from_value = CharField(null=True, max_length=64)
        to_value = CharField(max_length=64)
        cause = CharField()
        actor = CharField(max_length=64)
        request_id = CharField(max_length=128, default="")
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "order_events"

    db.create_tables([OrderEventRow])

    class OrderRow(Model):
        order_id = CharField(unique=True, max_length=40)
        out_trade_no = CharField(unique=True, max_length=32)
        user_id = CharField(max_length=64)
        request_id = CharField(max_length=128)
        fingerprint = CharField(max_length=64)
        product_id = CharField(max_length=64)
        kind = CharField(max_length=16)
        quantity = IntegerField()
        total_fee = BigIntegerField()
        description = CharField(max_length=127)
        attach = CharField(max_length=128, default="")
        article_id = CharField(null=True, max_length=64)
        status = CharField(max_length=24)
        fulfilment = CharField(max_length=16)
        fulfilment_reason = CharField(default="")
        version = BigIntegerField(default=1)
        expires_at = DateTimeField()
        transaction_id = CharField(null=True, max_length=32)
        paid_fee = BigIntegerField(default=0)
        refunded_fee = BigIntegerField(default=0)
        pay_channel = CharField(null=True, max_length=16)
        prepay_id = CharField(null=True, max_length=64)
        prepay_payload = TextField(null=True)
        prepay_at = DateTimeField(null=True)
        next_sync_at = DateTimeField(index=True, null=True)
        sync_attempts = IntegerField(default=0)
        created_at = DateTimeField()
        updated_at = DateTimeField()
        paid_at = DateTimeField(null=True)
        closed_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "orders"
            constraints = [
                Check("quantity > 0"),
                Check("total_fee > 0"),
                Check("refunded_fee >= 0 AND refunded_fee <= paid_fee"),
            ]
            indexes = ((("user_id", "request_id"), True), (("user_id", "created_at"), False))

    db.create_tables([OrderRow])
    # At most one UNPAID order per (user, product), decided by the database.
    db.execute_sql(
        "CREATE UNIQUE INDEX orders_one_unpaid ON orders (user_id, product_id) WHERE status = 'UNPAID'"
    )
    db.execute_sql("CREATE INDEX orders_status_expires ON orders (status, expires_at)")

    class ProductRow(Model):
        product_id = CharField(unique=True, max_length=64)
        kind = CharField(max_length=16)
        title = CharField(max_length=128)
        description = TextField(default="")
        price_fen = BigIntegerField()
        stock = BigIntegerField(null=True)
        duration_days = IntegerField(null=True)
        active = BooleanField(default=True)
        version = BigIntegerField(default=1)
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = "products"
            constraints = [Check("stock IS NULL OR stock >= 0"), Check("price_fen > 0")]

    db.create_tables([ProductRow])

    class RefundRow(Model):
        out_refund_no = CharField(unique=True, max_length=64)
        order_id = CharField(index=True, max_length=40)
        refund_id = CharField(null=True, max_length=64)
        amount = BigIntegerField()
        order_total = BigIntegerField()
        status = CharField(max_length=16)
        reason = CharField(max_length=80, default="")
        submitted = BooleanField(default=False)
        next_poll_at = DateTimeField(index=True, null=True)
        poll_attempts = IntegerField(default=0)
        version = BigIntegerField(default=1)
        created_at = DateTimeField()
        updated_at = DateTimeField()
        succeeded_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "refunds"
            constraints = [Check("amount > 0")]

    db.create_tables([RefundRow])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("refunds"))
    migrator.migrate(migrator.drop_table("products"))
    migrator.migrate(migrator.drop_table("orders"))
    migrator.migrate(migrator.drop_table("order_events"))
    migrator.migrate(migrator.drop_table("notifications"))
    migrator.migrate(migrator.drop_table("memberships"))
    migrator.migrate(migrator.drop_table("grants"))
    migrator.migrate(migrator.drop_table("fulfilments"))
