"""Peewee models: the schema. Natural keys are unique indexes; mutable rows carry `version`.

Timestamps are naive UTC in the database (portable across SQLite and PostgreSQL); the
repositories convert to aware datetimes at the boundary.
"""

from __future__ import annotations

import peewee as pw

from server.adapters.read_routing import RoutingProxy
from server.domain.order import OrderStatus

database_proxy = RoutingProxy()  # bound once (db.bind); a ReadRoute re-points it for one read


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class ProductRow(BaseModel):
    product_id = pw.CharField(max_length=64, unique=True)
    kind = pw.CharField(max_length=16)
    title = pw.CharField(max_length=128)
    description = pw.TextField(default="")
    price_fen = pw.BigIntegerField()
    stock = pw.BigIntegerField(null=True)  # NULL = unlimited
    duration_days = pw.IntegerField(null=True)
    active = pw.BooleanField(default=True)
    version = pw.BigIntegerField(default=1)
    updated_at = pw.DateTimeField()

    class Meta:
        table_name = "products"
        constraints = [pw.Check("stock IS NULL OR stock >= 0"), pw.Check("price_fen > 0")]


class OrderRow(BaseModel):
    id = pw.AutoField()  # keyset pagination tie-breaker
    order_id = pw.CharField(max_length=40, unique=True)
    out_trade_no = pw.CharField(max_length=32, unique=True)
    user_id = pw.CharField(max_length=64)
    request_id = pw.CharField(max_length=128)
    fingerprint = pw.CharField(max_length=64)
    product_id = pw.CharField(max_length=64)
    kind = pw.CharField(max_length=16)
    quantity = pw.IntegerField()
    total_fee = pw.BigIntegerField()
    description = pw.CharField(max_length=127)
    attach = pw.CharField(max_length=128, default="")
    article_id = pw.CharField(max_length=64, null=True)
    status = pw.CharField(max_length=24)
    fulfilment = pw.CharField(max_length=16)
    fulfilment_reason = pw.CharField(max_length=255, default="")
    version = pw.BigIntegerField(default=1)
    expires_at = pw.DateTimeField()
    transaction_id = pw.CharField(max_length=32, null=True)
    paid_fee = pw.BigIntegerField(default=0)
    refunded_fee = pw.BigIntegerField(default=0)
    pay_channel = pw.CharField(max_length=16, null=True)
    prepay_id = pw.CharField(max_length=64, null=True)
    prepay_payload = pw.TextField(null=True)  # code_url / h5_url for NATIVE / H5
    prepay_at = pw.DateTimeField(null=True)
    next_sync_at = pw.DateTimeField(null=True, index=True)
    sync_attempts = pw.IntegerField(default=0)
    created_at = pw.DateTimeField()
    updated_at = pw.DateTimeField()
    paid_at = pw.DateTimeField(null=True)
    closed_at = pw.DateTimeField(null=True)
    account = pw.CharField(max_length=64, default="default")  # migration 0004 (issue 18)

    class Meta:
        table_name = "orders"
        indexes = ((("user_id", "request_id"), True), (("user_id", "created_at"), False))
        constraints = [
            pw.Check("quantity > 0"),
            pw.Check("total_fee > 0"),
            pw.Check("refunded_fee >= 0 AND refunded_fee <= paid_fee"),
        ]


# At most one UNPAID order per (user, product): a partial unique index, so the database decides.
OrderRow.add_index(
    OrderRow.index(OrderRow.user_id, OrderRow.product_id, unique=True, name="orders_one_unpaid").where(
        OrderRow.status == OrderStatus.UNPAID.value
    )
)
OrderRow.add_index(
    OrderRow.index(OrderRow.status, OrderRow.expires_at, name="orders_status_expires"),
)


class OrderEventRow(BaseModel):
    order_id = pw.CharField(max_length=40, index=True)
    field = pw.CharField(max_length=16)  # status | fulfilment | article | created
    from_value = pw.CharField(max_length=64, null=True)
    to_value = pw.CharField(max_length=64)
    cause = pw.CharField(max_length=255)
    actor = pw.CharField(max_length=64)
    request_id = pw.CharField(max_length=128, default="")
    created_at = pw.DateTimeField()

    class Meta:
        table_name = "order_events"


class MembershipRow(BaseModel):
    user_id = pw.CharField(max_length=64, unique=True)
    expires_at = pw.DateTimeField()
    version = pw.BigIntegerField(default=1)
    updated_at = pw.DateTimeField()

    class Meta:
        table_name = "memberships"


class NotificationRow(BaseModel):
    """Raw notifications, stored before processing so a crash loses nothing."""

    notification_id = pw.CharField(max_length=64, unique=True)
    event_type = pw.CharField(max_length=32)
    headers = pw.TextField()
    body = pw.TextField()
    status = pw.CharField(max_length=16, index=True)  # RECEIVED | PROCESSED | FAILED
    outcome = pw.CharField(max_length=32, default="")
    attempts = pw.IntegerField(default=0)
    received_at = pw.DateTimeField()
    processed_at = pw.DateTimeField(null=True)
    version = pw.BigIntegerField(default=1)
    account = pw.CharField(max_length=64, default="default")  # migration 0015 (issue 18)

    class Meta:
        table_name = "notifications"


class FulfilmentRow(BaseModel):
    """Outbox row and exactly-once ledger in one: unique per order, written with the PAID transition."""

    order_id = pw.CharField(max_length=40, unique=True)
    kind = pw.CharField(max_length=16)
    status = pw.CharField(max_length=16)  # PENDING | SUCCEEDED | FAILED
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField()
    last_error = pw.TextField(default="")
    version = pw.BigIntegerField(default=1)
    created_at = pw.DateTimeField()
    updated_at = pw.DateTimeField()

    class Meta:
        table_name = "fulfilments"
        indexes = ((("status", "next_attempt_at"), False),)


class GrantRow(BaseModel):
    """What a fulfilment handler granted, one row per order (VIP days, article access, shipment)."""

    order_id = pw.CharField(max_length=40, unique=True)
    user_id = pw.CharField(max_length=64, index=True)
    kind = pw.CharField(max_length=16)
    article_id = pw.CharField(max_length=64, null=True)
    days = pw.IntegerField(default=0)
    state = pw.CharField(max_length=24)  # GRANTED | READY_TO_SHIP | REVOKED
    created_at = pw.DateTimeField()
    revoked_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "grants"


class RefundRow(BaseModel):
    out_refund_no = pw.CharField(max_length=64, unique=True)
    order_id = pw.CharField(max_length=40, index=True)
    refund_id = pw.CharField(max_length=64, null=True)
    amount = pw.BigIntegerField()
    order_total = pw.BigIntegerField()
    status = pw.CharField(max_length=16)  # PROCESSING | SUCCESS | CLOSED | ABNORMAL
    reason = pw.CharField(max_length=80, default="")
    submitted = pw.BooleanField(default=False)
    next_poll_at = pw.DateTimeField(null=True, index=True)
    poll_attempts = pw.IntegerField(default=0)
    version = pw.BigIntegerField(default=1)
    created_at = pw.DateTimeField()
    updated_at = pw.DateTimeField()
    succeeded_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "refunds"
        constraints = [pw.Check("amount > 0")]


ALL_TABLES: tuple[type[BaseModel], ...] = (
    ProductRow,
    OrderRow,
    OrderEventRow,
    MembershipRow,
    NotificationRow,
    FulfilmentRow,
    GrantRow,
    RefundRow,
)


# --- issue 19: the order event feed (migration 0005) ---------------------------------------------
class EventLogRow(BaseModel):
    position = pw.BigIntegerField(primary_key=True)
    type = pw.CharField(max_length=32)
    account = pw.CharField(max_length=64, default="default")
    order_id = pw.CharField(max_length=40, index=True)
    occurred_at = pw.DateTimeField(index=True)
    payload = pw.BlobField()  # the serialized public orderpay.v1.OrderEvent

    class Meta:
        table_name = "event_log"


class EventLogHeadRow(BaseModel):
    """One row: the last position handed out (the append lock, see server/adapters/event_log.py)."""

    id = pw.IntegerField(primary_key=True)
    position = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "event_log_head"


class EventSubscriberRow(BaseModel):
    name = pw.CharField(max_length=64, unique=True)
    acked_position = pw.BigIntegerField(default=0)
    registered_at = pw.DateTimeField()
    acked_at = pw.DateTimeField(null=True)
    last_seen_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "event_subscribers"
