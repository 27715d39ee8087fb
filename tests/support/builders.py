"""Orders and refunds in a given state, for tests that set the scene directly (random ids each)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from server.domain.catalogue import ProductKind
from server.domain.order import Fulfilment, Order, OrderStatus
from server.domain.refund import Refund, RefundStatus


def an_order(
    at: datetime, status: OrderStatus = OrderStatus.UNPAID, total_fee: int = 1800, **fields: Any
) -> Order:
    """A VIP_PLAN order created at `at`; anything else in `fields` (e.g. paid_fee, fulfilment)."""
    order_id = "ord_" + secrets.token_hex(8)
    values: dict[str, Any] = {
        "order_id": order_id,
        "out_trade_no": "OP" + secrets.token_hex(12),
        "user_id": "u-" + order_id,
        "request_id": order_id,
        "fingerprint": "f",
        "product_id": "vip-month",
        "kind": ProductKind.VIP_PLAN,
        "quantity": 1,
        "total_fee": total_fee,
        "description": "VIP",
        "attach": "",
        "article_id": None,
        "status": status,
        "fulfilment": Fulfilment.PENDING,
        "fulfilment_reason": "",
        "version": 1,
        "expires_at": at + timedelta(minutes=30),
        "created_at": at,
        "updated_at": at,
        **fields,
    }
    return Order(**values)


def a_paid_order(at: datetime, status: OrderStatus = OrderStatus.PAID, **fields: Any) -> Order:
    """Paid in full (1800 fen) with a WeChat transaction id; `status` may say what went back since."""
    return an_order(at, status, paid_fee=1800, transaction_id="4200" + secrets.token_hex(8), **fields)


def a_refund(order: Order, status: RefundStatus, amount: int = 600, number: str = "R") -> Refund:
    """A submitted refund of `order` (number `number` + order_id) in `status`."""
    return Refund(
        out_refund_no=number + order.order_id,
        order_id=order.order_id,
        amount=amount,
        order_total=order.total_fee,
        status=status,
        reason="part",
        submitted=True,
        version=1,
        created_at=order.created_at,
        updated_at=order.created_at,
        refund_id="50" + number + order.order_id[-8:],
    )
