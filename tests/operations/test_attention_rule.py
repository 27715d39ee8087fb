"""The admin query's "needs attention" (SQL) and the domain's `needs_a_human` agree, order by order."""

from __future__ import annotations

import itertools
import secrets

from server.adapters.admin_shapes import OrderFilter
from server.app import App
from server.domain.operations import RESOLVED_BY_REFUND, needs_a_human
from server.domain.order import Fulfilment, OrderStatus
from server.domain.refund import RefundStatus, live_refund_amount
from tests.support.builders import a_paid_order, a_refund

STATUSES = [OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.CLOSED]
FULFILMENTS = [Fulfilment.PENDING, Fulfilment.HELD, Fulfilment.FAILED, Fulfilment.SUCCEEDED]
REASONS = ["", "boom", f"{RESOLVED_BY_REFUND}: customer asked"]
REFUNDS: list[RefundStatus | None] = [None, *RefundStatus]
AMOUNTS = [600, 1800]  # part of what was paid, or all of it (a late payment's automatic refund)


def test_the_attention_query_is_the_domain_rule(app: App) -> None:
    user = "attn-" + secrets.token_hex(4)
    expected: dict[str, bool] = {}
    with app.uow() as uow:
        for status, fulfilment, reason, refund_status, amount in itertools.product(
            STATUSES, FULFILMENTS, REASONS, REFUNDS, AMOUNTS
        ):
            order = a_paid_order(
                app.clock(), status, user_id=user, fulfilment=fulfilment, fulfilment_reason=reason
            )
            uow.orders.insert(order)
            refunds = [] if refund_status is None else [a_refund(order, refund_status, amount)]
            for refund in refunds:
                uow.refunds.insert(refund, due_at=order.created_at)
            expected[order.order_id] = needs_a_human(order, live_refund_amount(refunds))
    listed = app.admin.list_orders(OrderFilter(user_id=user, needs_attention=True), 1000).orders
    assert {o.order_id for o in listed} == {order_id for order_id, needs in expected.items() if needs}
    assert any(expected.values())
    assert not all(expected.values())


def test_a_held_order_whose_refund_covers_everything_paid_leaves_the_queue(app: App) -> None:
    """A late payment's automatic refund of the whole amount: nothing is owed, nothing to decide."""
    user = "attn-held-" + secrets.token_hex(4)
    cases = {}
    with app.uow() as uow:
        for status in (
            RefundStatus.SUCCESS,
            RefundStatus.PROCESSING,
            RefundStatus.ABNORMAL,
            RefundStatus.CLOSED,
            None,
        ):
            order = a_paid_order(
                app.clock(), OrderStatus.CLOSED, user_id=user, fulfilment=Fulfilment.HELD,
                fulfilment_reason="PAID_AFTER_CLOSE: paid ¥18.00, due ¥18.00",
            )  # fmt: skip
            uow.orders.insert(order)
            if status is not None:
                uow.refunds.insert(a_refund(order, status, amount=order.paid_fee), due_at=order.created_at)
            cases[status] = order.order_id

    queue = {o.order_id for o in app.admin.needs_attention(app.clock()).held}

    assert cases[None] in queue  # paid, nothing going back: a person decides
    assert cases[RefundStatus.CLOSED] in queue  # the refund failed: the money is owed again
    for status in (RefundStatus.SUCCESS, RefundStatus.PROCESSING, RefundStatus.ABNORMAL):
        assert cases[status] not in queue, status
