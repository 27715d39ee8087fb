"""Peewee implementations of the service ports: rows in, domain objects out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime
from typing import Any

import peewee as pw

from server.adapters.compiled import CompiledCompareAndSet, CompiledInsert, CompiledLookup
from server.adapters.event_log import PeeweeEventLog
from server.adapters.insert_first import InsertFirst
from server.adapters.tables import OrderEventRow, OrderRow, ProductRow, RefundRow

# from_db_time / to_db_time live in `times`; importing them from here still works.
from server.adapters.times import from_db_time, required_time, to_db_time
from server.domain.catalogue import Product, ProductKind
from server.domain.order import Fulfilment, Order, OrderStatus
from server.domain.refund import Refund, RefundStatus
from server.service.feed_ports import FeedEntry
from server.service.shapes import AuditEvent, Cursor, OrderInsertConflict

_ORDER_FIELDS = tuple(f.name for f in fields(Order))
_DIFFED_ORDER_FIELDS = tuple(name for name in _ORDER_FIELDS if name != "version")
_ENUM_COLUMNS = ("status", "fulfilment", "kind")
_REFUND_FIELDS = tuple(f.name for f in fields(Refund))
_DIFFED_REFUND_FIELDS = tuple(name for name in _REFUND_FIELDS if name != "version")
_COMMITTED_REFUND_STATUSES = [s.value for s in RefundStatus if s.counts_against_paid]


def order_from_row(row: Mapping[str, Any]) -> Order:
    """An Order from a row's column values (`OrderRow.__data__` or a compiled lookup's dict)."""
    values: dict[str, Any] = {name: row[name] for name in _ORDER_FIELDS}
    values["kind"] = ProductKind(row["kind"])
    values["status"] = OrderStatus(row["status"])
    values["fulfilment"] = Fulfilment(row["fulfilment"])
    for name in ("expires_at", "created_at", "updated_at"):
        values[name] = required_time(values[name])
    for name in ("prepay_at", "next_sync_at", "paid_at", "closed_at"):
        values[name] = from_db_time(values[name])
    return Order(**values)


def _db_values(changes: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in changes.items():
        out[key] = to_db_time(value) if isinstance(value, datetime) else value
    return out


def _product_from_row(row: Mapping[str, Any]) -> Product:
    return Product(
        product_id=row["product_id"],
        kind=ProductKind(row["kind"]),
        title=row["title"],
        description=row["description"],
        price_fen=row["price_fen"],
        stock=row["stock"],
        duration_days=row["duration_days"],
        active=bool(row["active"]),
    )


_PRODUCT_BY_ID = CompiledLookup(ProductRow, ProductRow.product_id)
_ORDER_BY_ID = CompiledLookup(OrderRow, OrderRow.order_id)
_ORDER_BY_KEY = CompiledLookup(OrderRow, OrderRow.user_id, OrderRow.request_id)
_ORDER_BY_OUT_TRADE_NO = CompiledLookup(OrderRow, OrderRow.out_trade_no)
_UNPAID_ORDER = CompiledLookup(OrderRow, OrderRow.user_id, OrderRow.product_id, OrderRow.status)
_INSERT_ORDER = CompiledInsert(OrderRow)
_INSERT_FIRST = InsertFirst(PeeweeEventLog())
_INSERT_EVENT = CompiledInsert(OrderEventRow)
_ORDER_CAS = CompiledCompareAndSet(OrderRow, OrderRow.order_id)
_REFUND_CAS = CompiledCompareAndSet(RefundRow, RefundRow.out_refund_no)


class PeeweeProducts:
    def get(self, product_id: str) -> Product | None:
        row = _PRODUCT_BY_ID.one(product_id)
        return None if row is None else _product_from_row(row)

    def list_active(self, kind: str | None = None) -> list[Product]:
        query = ProductRow.select().where(ProductRow.active == True)  # noqa: E712 - peewee expression
        if kind is not None:
            query = query.where(ProductRow.kind == kind)
        return [
            _product_from_row(r.__data__) for r in query.order_by(ProductRow.price_fen, ProductRow.product_id)
        ]

    def reserve_stock(self, product_id: str, quantity: int) -> bool:
        """Conditional decrement: never below zero. Unlimited stock (NULL) always succeeds."""
        updated = (
            ProductRow.update(stock=ProductRow.stock - quantity, version=ProductRow.version + 1)
            .where(
                (ProductRow.product_id == product_id)
                & ProductRow.stock.is_null(False)
                & (ProductRow.stock >= quantity)
            )
            .execute()
        )
        if updated:
            return True
        row = ProductRow.get_or_none(ProductRow.product_id == product_id)
        return row is not None and row.stock is None

    def release_stock(self, product_id: str, quantity: int) -> None:
        (
            ProductRow.update(stock=ProductRow.stock + quantity, version=ProductRow.version + 1)
            .where((ProductRow.product_id == product_id) & ProductRow.stock.is_null(False))
            .execute()
        )

    def upsert(self, product: Product, now: datetime) -> bool:
        """Insert a new product, or update an existing one's description fields (never its stock)."""
        values = {
            "kind": product.kind.value,
            "title": product.title,
            "description": product.description,
            "price_fen": product.price_fen,
            "duration_days": product.duration_days,
            "active": product.active,
            "updated_at": to_db_time(now),
        }
        try:
            with ProductRow._meta.database.atomic():
                ProductRow.insert(product_id=product.product_id, stock=product.stock, **values).execute()
        except pw.IntegrityError:
            ProductRow.update(version=ProductRow.version + 1, **values).where(
                ProductRow.product_id == product.product_id
            ).execute()
            return False
        return True


class PeeweeOrders:
    def get(self, order_id: str) -> Order | None:
        return _order_or_none(_ORDER_BY_ID.one(order_id))

    def get_by_key(self, user_id: str, request_id: str) -> Order | None:
        return _order_or_none(_ORDER_BY_KEY.one(user_id, request_id))

    def get_by_out_trade_no(self, out_trade_no: str) -> Order | None:
        return _order_or_none(_ORDER_BY_OUT_TRADE_NO.one(out_trade_no))

    def get_unpaid(self, user_id: str, product_id: str) -> Order | None:
        return _order_or_none(_UNPAID_ORDER.one(user_id, product_id, OrderStatus.UNPAID.value))

    def insert(self, order: Order) -> None:
        values = _db_values({name: getattr(order, name) for name in _ORDER_FIELDS})
        values.update(kind=order.kind.value, status=order.status.value, fulfilment=order.fulfilment.value)
        try:
            with OrderRow._meta.database.atomic():  # a savepoint: the conflict must not poison the txn
                _INSERT_ORDER.execute(values)
        except pw.IntegrityError as exc:
            raise OrderInsertConflict(str(exc)) from exc

    def insert_first(
        self, order: Order, created: AuditEvent, now: datetime, entry: FeedEntry | None = None
    ) -> bool:
        """CreateOrder's write (server/adapters/insert_first.py): the order, its audit row and its
        feed entry when given, or nothing and False when a unique index already holds a conflicting
        row. No savepoint."""
        return _INSERT_FIRST.execute(order, created, now, entry)

    def save(self, before: Order, after: Order) -> Order | None:
        """UPDATE only the changed columns ... WHERE order_id = ? AND version = before.version.

        The row was exactly `before` at that version, so the saved state needs no second read.
        """
        changes = {
            name: value
            for name in _DIFFED_ORDER_FIELDS
            if (value := getattr(after, name)) != getattr(before, name)
        }
        values = _db_values(changes)
        for key in _ENUM_COLUMNS:
            if key in values:
                values[key] = str(values[key])
        if not _ORDER_CAS.execute(before.order_id, before.version, values):
            return None
        return replace(after, version=before.version + 1)

    def list_for_user(
        self,
        user_id: str,
        status: OrderStatus | None,
        after: Cursor | None,
        limit: int,
        account: str | None = None,
    ) -> Sequence[tuple[Order, Cursor]]:
        query = OrderRow.select().where(OrderRow.user_id == user_id)
        if account is not None:
            query = query.where(OrderRow.account == account)
        if status is not None:
            query = query.where(OrderRow.status == status.value)
        if after is not None:
            at = to_db_time(after.created_at)
            query = query.where(
                (OrderRow.created_at < at) | ((OrderRow.created_at == at) & (OrderRow.id < after.seq))
            )
        rows = query.order_by(OrderRow.created_at.desc(), OrderRow.id.desc()).limit(limit)
        return [(order_from_row(r.__data__), Cursor(required_time(r.created_at), r.id)) for r in rows]


def _order_or_none(row: Mapping[str, Any] | None) -> Order | None:
    return None if row is None else order_from_row(row)


class PeeweeAudit:
    def record(self, event: AuditEvent, now: datetime) -> None:
        _INSERT_EVENT.execute(
            {
                "order_id": event.order_id,
                "field": event.field,
                "from_value": event.from_value,
                "to_value": event.to_value,
                "cause": event.cause[:255],
                "actor": event.actor[:64],
                "request_id": event.request_id,
                "created_at": to_db_time(now),
            }
        )


class PeeweeRefunds:
    def get(self, out_refund_no: str) -> Refund | None:
        row = RefundRow.get_or_none(RefundRow.out_refund_no == out_refund_no)
        return None if row is None else _refund_from_row(row)

    def insert(self, refund: Refund, due_at: datetime) -> None:
        values = _db_values({name: getattr(refund, name) for name in _REFUND_FIELDS})
        values["status"] = refund.status.value
        values["next_poll_at"] = to_db_time(due_at)
        RefundRow.insert(**values).execute()

    def save(self, before: Refund, after: Refund) -> Refund | None:
        """UPDATE only the changed columns ... WHERE out_refund_no = ? AND version = before.version."""
        changes = {
            name: value
            for name in _DIFFED_REFUND_FIELDS
            if (value := getattr(after, name)) != getattr(before, name)
        }
        values = _db_values(changes)
        if "status" in values:
            values["status"] = str(values["status"])
        if not _REFUND_CAS.execute(before.out_refund_no, before.version, values):
            return None
        return replace(after, version=before.version + 1)

    def committed_amount(self, order_id: str) -> int:
        """Refunds that are, or may still become, money back: everything but CLOSED."""
        total = (
            RefundRow.select(pw.fn.COALESCE(pw.fn.SUM(RefundRow.amount), 0))
            .where((RefundRow.order_id == order_id) & RefundRow.status.in_(_COMMITTED_REFUND_STATUSES))
            .scalar()
        )
        return int(total or 0)

    def stop_polling(self, out_refund_no: str, now: datetime) -> bool:
        """The poller leaves the refund alone (it stays PROCESSING, listed as stuck, until settled)."""
        return bool(
            RefundRow.update(next_poll_at=None, updated_at=to_db_time(now), version=RefundRow.version + 1)
            .where(
                (RefundRow.out_refund_no == out_refund_no)
                & (RefundRow.status == RefundStatus.PROCESSING.value)
                & RefundRow.next_poll_at.is_null(False)
            )
            .execute()
        )


def _refund_from_row(row: RefundRow) -> Refund:
    values: dict[str, Any] = {name: getattr(row, name) for name in _REFUND_FIELDS}
    values["status"] = RefundStatus(row.status)
    values["created_at"] = required_time(row.created_at)
    values["updated_at"] = required_time(row.updated_at)
    values["succeeded_at"] = from_db_time(row.succeeded_at)
    values["next_poll_at"] = from_db_time(row.next_poll_at)
    return Refund(**values)
