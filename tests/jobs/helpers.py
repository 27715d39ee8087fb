"""Helpers for fulfilment and job tests: a clock tests can move, paid orders, row reads."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from server.adapters.tables import FulfilmentRow, GrantRow, MembershipRow, RefundRow
from server.adapters.times import from_db_time
from server.app import App
from server.bootstrap import retry_policy
from server.domain.catalogue import Product, ProductKind
from server.domain.fulfilment import Handler
from server.domain.order import CreateOrder, Order, ReceivedPayment
from server.domain.provider import TransactionReport
from server.service.context import Caller
from server.service.fulfilment import FulfilmentWorker
from tests.support.wechat import FACTS

BFF = Caller("bff", "test")


class MovableClock:
    """Real time plus an offset that tests push forward; safe to read from many threads."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta

    def move_to(self, moment: datetime) -> None:
        """Jump forward so that now >= moment (never backwards)."""
        gap = moment - self()
        if gap > timedelta():
            self.advance(gap + timedelta(milliseconds=1))


def add_product(
    app: App, product_id: str, kind: ProductKind, *, days: int | None = None, stock: int | None = None
) -> None:
    app.catalogue.load([Product(product_id, kind, "t", "d", 100, stock=stock, duration_days=days)])


def unpaid_order(app: App, user_id: str, product_id: str, quantity: int = 1) -> Order:
    cmd = CreateOrder(
        request_id=secrets.token_hex(6), user_id=user_id, product_id=product_id, quantity=quantity
    )
    return app.orders.create_order(cmd, BFF).order


def transaction_for(order: Order, total: int | None = None) -> TransactionReport:
    """What WeChat Pay reports of `order` once paid, in our terms (the wire format is tests/wxpay's)."""
    payment = ReceivedPayment(
        out_trade_no=order.out_trade_no,
        transaction_id="4200" + secrets.token_hex(12),
        total=order.total_fee if total is None else total,
        success_time=None,
    )
    return TransactionReport(order.out_trade_no, FACTS["mchid"], FACTS["appid"], "SUCCESS", payment)


def paid_order(app: App, user_id: str, product_id: str, quantity: int = 1) -> Order:
    """An order paid through the real payment path (which writes the PENDING fulfilment row)."""
    order = unpaid_order(app, user_id, product_id, quantity)
    result = app.payments.payments.apply_transaction(transaction_for(order), source="test")
    assert result.outcome == "applied", result
    assert result.order is not None
    return result.order


def make_worker(app: App, *, handlers: dict[str, Handler] | None = None, **kwargs: Any) -> FulfilmentWorker:
    kwargs.setdefault("policy", retry_policy(app.settings))
    return FulfilmentWorker(app.uow, app.clock, handlers=handlers, **kwargs)


def ledger_row(app: App, order_id: str) -> FulfilmentRow:
    with app.db.connection_context():
        return FulfilmentRow.get(FulfilmentRow.order_id == order_id)


def grants_for(app: App, order_id: str) -> list[GrantRow]:
    with app.db.connection_context():
        return list(GrantRow.select().where(GrantRow.order_id == order_id))


def membership_expiry(app: App, user_id: str) -> datetime | None:
    with app.db.connection_context():
        row = MembershipRow.get_or_none(MembershipRow.user_id == user_id)
        return None if row is None else from_db_time(row.expires_at)


def refunds_for(app: App, order_id: str) -> list[RefundRow]:
    with app.db.connection_context():
        return list(RefundRow.select().where(RefundRow.order_id == order_id))
