"""The order aggregate: statuses, the state machine, and what a new order is made of."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from server.domain.catalogue import ProductKind
from server.domain.errors import InvalidStateTransitionError


class OrderStatus(StrEnum):
    UNPAID = "UNPAID"
    PAID = "PAID"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    CLOSED = "CLOSED"

    @property
    def legacy_code(self) -> int:
        """uni-pay's numeric status, kept for parity in docs and exports."""
        return _LEGACY_CODES[self]


_LEGACY_CODES = {
    OrderStatus.UNPAID: 0,
    OrderStatus.PAID: 1,
    OrderStatus.PARTIALLY_REFUNDED: 2,
    OrderStatus.REFUNDED: 3,
    OrderStatus.CLOSED: -1,
}

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.UNPAID: frozenset({OrderStatus.PAID, OrderStatus.CLOSED}),
    OrderStatus.PAID: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.PARTIALLY_REFUNDED: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.REFUNDED: frozenset(),
    OrderStatus.CLOSED: frozenset(),
}


class Fulfilment(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    HELD = "HELD"


def check_transition(current: OrderStatus, target: OrderStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidStateTransitionError(
            f"order cannot move from {current} to {target}",
            metadata={"from": current.value, "to": target.value},
        )


@dataclass(frozen=True)
class Order:
    order_id: str
    out_trade_no: str
    user_id: str
    request_id: str
    fingerprint: str
    product_id: str
    kind: ProductKind
    quantity: int
    total_fee: int
    description: str
    attach: str
    article_id: str | None
    status: OrderStatus
    fulfilment: Fulfilment
    fulfilment_reason: str
    version: int
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    transaction_id: str | None = None
    paid_fee: int = 0
    refunded_fee: int = 0
    pay_channel: str | None = None
    prepay_id: str | None = None
    prepay_payload: str | None = None
    prepay_at: datetime | None = None
    next_sync_at: datetime | None = None
    sync_attempts: int = 0
    paid_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def refundable_fee(self) -> int:
        return self.paid_fee - self.refunded_fee


@dataclass(frozen=True)
class CreateOrder:
    """The CreateOrder command, already syntactically valid (see `validation`)."""

    request_id: str
    user_id: str
    product_id: str
    quantity: int
    description: str | None = None
    attach: str | None = None

    def fingerprint(self) -> str:
        """What makes two requests with the same key 'the same request'."""
        canonical = json.dumps(
            [self.product_id, self.quantity, self.description, self.attach], ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def new_order_id() -> str:
    return "ord_" + secrets.token_hex(12)


def new_out_trade_no(now: datetime) -> str:
    """32 chars of [0-9A-Za-z]: a timestamp for operators, then 16 random hex digits."""
    return "OP" + now.strftime("%Y%m%d%H%M%S") + secrets.token_hex(8)
