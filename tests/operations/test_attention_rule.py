"""The admin query's "needs attention" (SQL) and the domain's `needs_a_human` agree, order by order."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import replace
from datetime import timedelta

from server.adapters.admin_shapes import OrderFilter
from server.app import App
from server.domain.catalogue import ProductKind
from server.domain.operations import RESOLVED_BY_REFUND, needs_a_human
from server.domain.order import Fulfilment, Order, OrderStatus
from server.domain.refund import Refund, RefundStatus, live_refund_amount

STATUSES = [OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.CLOSED]
FULFILMENTS = [Fulfilment.PENDING, Fulfilment.HELD, Fulfilment.FAILED, Fulfilment.SUCCEEDED]
REASONS = ["", "boom", f"{RESOLVED_BY_REFUND}: customer asked"]
REFUNDS: list[RefundStatus | None] = [None, *RefundStatus]


def _order(app: App, user: str, status: OrderStatus, fulfilment: Fulfilment, reason: str) -> Order:
    now = app.clock()
    order_id = "ord_" + secrets.token_hex(8)
    return Order(
        order_id=order_id,
        out_trade_no="OP" + secrets.token_hex(12),
        user_id=user,
        request_id=order_id,
        fingerprint="f",
        product_id="vip-month",
        kind=ProductKind.VIP_PLAN,
        quantity=1,
        total_fee=1800,
        description="VIP",
        attach="",
        article_id=None,
        status=status,
        fulfilment=fulfilment,
        fulfilment_reason=reason,
        version=1,
        expires_at=now + timedelta(minutes=30),
        created_at=now,
        updated_at=now,
        paid_fee=1800,
        transaction_id="4200" + order_id,
    )


def _refund(order: Order, status: RefundStatus) -> Refund:
    return Refund(
        out_refund_no="R" + order.order_id,
        order_id=order.order_id,
        amount=600,
        order_total=order.total_fee,
        status=status,
        reason="part",
        submitted=True,
        version=1,
        created_at=order.created_at,
        updated_at=order.created_at,
    )


def test_the_attention_query_is_the_domain_rule(app: App) -> None:
    user = "attn-" + secrets.token_hex(4)
    expected: dict[str, bool] = {}
    with app.uow() as uow:
        for status, fulfilment, reason, refund_status in itertools.product(
            STATUSES, FULFILMENTS, REASONS, REFUNDS
        ):
            order = _order(app, user, status, fulfilment, reason)
            uow.orders.insert(order)
            refunds = [] if refund_status is None else [_refund(order, refund_status)]
            for refund in refunds:
                uow.refunds.insert(refund, due_at=order.created_at)
            expected[order.order_id] = needs_a_human(order, live_refund_amount(refunds))
    listed = app.admin.list_orders(OrderFilter(user_id=user, needs_attention=True), 200).orders
    assert {o.order_id for o in listed} == {order_id for order_id, needs in expected.items() if needs}
    assert any(expected.values())
    assert not all(expected.values())


def test_a_held_order_whose_refund_covers_everything_paid_leaves_the_queue(app: App) -> None:
    """A late payment's automatic refund of the whole amount: nothing is left for a person to decide."""
    user = "attn-held-" + secrets.token_hex(4)
    with app.uow() as uow:
        cases = {}
        for status in (RefundStatus.SUCCESS, RefundStatus.PROCESSING, RefundStatus.ABNORMAL, None):
            order = _order(app, user, OrderStatus.CLOSED, Fulfilment.HELD, "PAID_AFTER_CLOSE")
            uow.orders.insert(order)
            if status is not None:
                whole = replace(_refund(order, status), amount=order.paid_fee)
                uow.refunds.insert(whole, due_at=order.created_at)
            cases[status] = order.order_id

    queue = {o.order_id for o in app.admin.needs_attention(app.clock()).held}

    assert cases[None] in queue  # paid, nothing going back: a person decides
    for status in (RefundStatus.SUCCESS, RefundStatus.PROCESSING, RefundStatus.ABNORMAL):
        assert cases[status] not in queue, status
