"""The order aggregate: statuses, the state machine, and what a new order is made of."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from server.domain.catalogue import ProductKind
from server.domain.errors import InvalidStateTransitionError, RefundExceedsPaidError
from server.domain.events import (
    AmountMismatch,
    Event,
    FulfilmentDecided,
    FulfilmentFailed,
    OrderFullyRefunded,
    OrderPaid,
    PaidAfterClose,
)
from server.domain.money import yuan
from server.domain.outcomes import ApplyOutcome
from server.domain.refund import PlannedRefund


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
    # The merchant account that takes this order (server/domain/routing.py): decided at create, never
    # changed; every later call to the provider goes out under it.
    account: str = "default"

    @property
    def refundable_fee(self) -> int:
        return self.paid_fee - self.refunded_fee

    # --- payment ----------------------------------------------------------------------------------
    def apply_payment(self, paid: ReceivedPayment, now: datetime) -> Transition:
        """The provider says `paid`: record it once; hold what must not be fulfilled."""
        if self.transaction_id:
            return Transition(self, ApplyOutcome.DUPLICATE)
        recorded = replace(
            self,
            transaction_id=paid.transaction_id,
            paid_fee=paid.total,
            paid_at=paid.success_time or now,
            updated_at=now,
            next_sync_at=None,
        )
        if self.status is OrderStatus.CLOSED:  # no status change: the transaction is the record
            held = recorded._held("PAID_AFTER_CLOSE", paid.total)
            return Transition(held, ApplyOutcome.PAID_AFTER_CLOSE, (PaidAfterClose(self.order_id),))
        check_transition(self.status, OrderStatus.PAID)
        if paid.total != self.total_fee:
            held = replace(recorded, status=OrderStatus.PAID)._held("AMOUNT_MISMATCH", paid.total)
            event = AmountMismatch(self.order_id, paid.total, self.total_fee)
            return Transition(held, ApplyOutcome.AMOUNT_MISMATCH, (event,))
        paid_order = replace(recorded, status=OrderStatus.PAID)
        return Transition(paid_order, ApplyOutcome.APPLIED, (OrderPaid(self.order_id, self.kind.value),))

    def _held(self, reason: str, paid: int) -> Order:
        return replace(
            self,
            fulfilment=Fulfilment.HELD,
            fulfilment_reason=f"{reason}: paid {yuan(paid)}, due {yuan(self.total_fee)}",
        )

    def late_payment_refund(self) -> PlannedRefund:
        """A payment on a CLOSED order goes back in full, under a number derived from the order."""
        return PlannedRefund(f"PC{self.order_id}"[:64], self.order_id, self.paid_fee, "paid after close")

    # --- refunds ----------------------------------------------------------------------------------
    @property
    def refundable(self) -> bool:
        """PAID or partly refunded, or CLOSED with money on it (paid after close)."""
        return self.status in REFUNDABLE or (self.status is OrderStatus.CLOSED and self.paid_fee > 0)

    def check_refund(self, amount: int, committed: int) -> None:
        """Refuse a refund the order cannot take; `committed`: live refunds already asked for."""
        if not self.refundable:
            raise InvalidStateTransitionError(
                f"a {self.status} order cannot be refunded", metadata={"from": self.status.value}
            )
        if committed + amount > self.paid_fee:
            raise RefundExceedsPaidError(
                "refunds would exceed the amount paid",
                metadata={"refundable": str(self.paid_fee - committed), "paid_fee": str(self.paid_fee)},
            )

    def credit_refund(self, amount: int, now: datetime) -> Transition:
        """A refund of `amount` succeeded: partly or fully refunded (a CLOSED order stays CLOSED)."""
        refunded = self.refunded_fee + amount
        target = self.status
        if self.status in REFUNDABLE:
            target = OrderStatus.REFUNDED if refunded >= self.paid_fee else OrderStatus.PARTIALLY_REFUNDED
        credited = replace(self, refunded_fee=refunded, status=target, updated_at=now)
        full = target is OrderStatus.REFUNDED and self.status is not OrderStatus.REFUNDED
        events: tuple[Event, ...] = (OrderFullyRefunded(self.order_id),) if full else ()
        return Transition(credited, ApplyOutcome.APPLIED, events)

    # --- close and fulfilment -------------------------------------------------------------------
    def close(self, now: datetime) -> Order:
        check_transition(self.status, OrderStatus.CLOSED)
        return replace(self, status=OrderStatus.CLOSED, closed_at=now, updated_at=now)

    def fulfilled(self, now: datetime) -> Transition:
        moved = replace(self, fulfilment=Fulfilment.SUCCEEDED, fulfilment_reason="", updated_at=now)
        return Transition(moved, ApplyOutcome.APPLIED, (FulfilmentDecided(self.order_id),))

    def fulfilment_failed(self, reason: str, now: datetime, *, refund: bool) -> Transition:
        """FAILED for good; with `refund`, a still-PAID order gets its money back (FulfilmentFailed)."""
        moved = replace(self, fulfilment=Fulfilment.FAILED, fulfilment_reason=reason[:255], updated_at=now)
        events: list[Event] = [FulfilmentDecided(self.order_id)]
        if refund and self.status is OrderStatus.PAID:
            events.insert(0, FulfilmentFailed(self.order_id, reason[:255]))
        return Transition(moved, ApplyOutcome.APPLIED, tuple(events))

    def compensation_refund(self) -> PlannedRefund:
        """What a failed fulfilment gives back, under a number derived from the order."""
        return PlannedRefund(
            compensation_refund_no(self.order_id), self.order_id, self.refundable_fee, "fulfilment failed"
        )


COMPENSATION_REFUND_PREFIX = "FF"
REFUNDABLE = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED})
FULFILLABLE = REFUNDABLE


def compensation_refund_no(order_id: str) -> str:
    """Deterministic out_refund_no for the automatic refund, so a repeated request never doubles it."""
    return f"{COMPENSATION_REFUND_PREFIX}{order_id}"[:64]


@dataclass(frozen=True)
class ReceivedPayment:
    """What the provider reports about a successful payment, in our terms."""

    out_trade_no: str
    transaction_id: str
    total: int
    success_time: datetime | None = None


@dataclass(frozen=True)
class Transition:
    """A rule's answer: the new state (unsaved), what happened, and the events it raises."""

    order: Order
    outcome: ApplyOutcome
    events: tuple[Event, ...] = ()

    @property
    def changed(self) -> bool:
        return self.outcome is not ApplyOutcome.DUPLICATE


@dataclass(frozen=True)
class CreateOrder:
    """The CreateOrder command, already syntactically valid (see `validation`)."""

    request_id: str
    user_id: str
    product_id: str
    quantity: int
    description: str | None = None
    attach: str | None = None
    merchant: str | None = None  # the BFF's account hint (issue 18)

    def fingerprint(self) -> str:
        """What makes two requests with the same key 'the same request'."""
        parts: list[object] = [self.product_id, self.quantity, self.description, self.attach]
        if self.merchant:  # only when sent, so fingerprints stored before issue 18 still match
            parts.append(self.merchant)
        canonical = json.dumps(parts, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def new_order_id() -> str:
    return "ord_" + secrets.token_hex(12)


def new_out_trade_no(now: datetime) -> str:
    """32 chars of [0-9A-Za-z]: a timestamp for operators, then 16 random hex digits."""
    return "OP" + now.strftime("%Y%m%d%H%M%S") + secrets.token_hex(8)
