"""Rules for what an operator may do to an order by hand, where the other modules have none.

Pure functions over the Order aggregate: each returns the changes to write (by compare-and-set on the
order's version) or raises the domain error that explains why the action does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from server.domain.errors import (
    DomainError,
    FieldViolation,
    InvalidArgumentError,
    InvalidStateTransitionError,
    VersionConflictError,
)
from server.domain.events import Event, FulfilmentReopened
from server.domain.money import yuan
from server.domain.order import Fulfilment, Order, OrderStatus

REASON_MAX = 200
# fulfilment_reason prefixes that say an operator decided; "needs attention" leaves such orders alone.
RESOLVED_BY_REFUND = "RESOLVED_REFUND"
RETRY_FULFILMENT_STATUSES = frozenset({OrderStatus.PAID})
OPERATIONS_REFUND_PREFIX = "OPS"


class NotificationNotFoundError(DomainError):
    reason = "NOTIFICATION_NOT_FOUND"


class Resolution(StrEnum):
    REFUND = "REFUND"  # give the money back; the order is never fulfilled
    ACCEPT = "ACCEPT"  # keep the money and fulfil the order as if the payment had matched


@dataclass(frozen=True)
class Move:
    """What to write: the order's new fulfilment and reason, the audit row's from/to, and what it raised."""

    fulfilment: Fulfilment
    fulfilment_reason: str
    audit_to: str
    events: tuple[Event, ...] = ()


def require_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise InvalidArgumentError([FieldViolation("reason", "an operator action needs a reason")])
    if len(text) > REASON_MAX or not text.isprintable():
        raise InvalidArgumentError([FieldViolation("reason", f"at most {REASON_MAX} printable characters")])
    return text


def check_version(order: Order, expected_version: int) -> None:
    """0 means "whatever is current"; anything else must match what the operator was looking at."""
    if expected_version and expected_version != order.version:
        raise VersionConflictError(
            "the order changed since you looked at it", metadata={"current_version": str(order.version)}
        )


def resolve_held(order: Order, resolution: Resolution, reason: str, live_refunds_fen: int) -> Move:
    """A HELD order (amount mismatch, paid after close) leaves HELD exactly once, one way or the other.
    `live_refunds_fen`: what is already back or on its way (`live_refund_amount`)."""
    refusal = _resolution_refusal(order, resolution, live_refunds_fen)
    if refusal is not None:
        raise refusal
    if resolution is Resolution.ACCEPT:
        return Move(Fulfilment.PENDING, "", "ACCEPTED", _reopened(order))
    # FAILED: this order will never be fulfilled; the reason says an operator chose the refund.
    return Move(Fulfilment.FAILED, f"{RESOLVED_BY_REFUND}: {reason}"[:255], "REFUND")


def may_resolve(order: Order, resolution: Resolution, live_refunds_fen: int) -> bool:
    """`resolve_held` would take it: what the console offers."""
    return _resolution_refusal(order, resolution, live_refunds_fen) is None


def nothing_owed(order: Order, live_refunds_fen: int) -> bool:
    """Everything paid is back with the payer or on its way there (refunds PROCESSING, SUCCESS or
    ABNORMAL: a late payment's automatic refund): there is nothing left to decide about the money."""
    return live_refunds_fen >= order.paid_fee


def _resolution_refusal(order: Order, resolution: Resolution, live_refunds_fen: int) -> DomainError | None:
    if order.fulfilment is not Fulfilment.HELD:
        return InvalidStateTransitionError(
            f"only a HELD order can be resolved; this one is {order.fulfilment.value}",
            metadata={"from": order.fulfilment.value, "to": resolution.value},
        )
    if order.paid_fee <= 0:
        return InvalidStateTransitionError("nothing was paid, so there is nothing to resolve")
    if nothing_owed(order, live_refunds_fen):
        # Neither way applies: fulfilling would keep goods for money already going back, and a refund
        # would send nothing. A stuck refund shows (and is acted on) among the refunds.
        return InvalidStateTransitionError(
            f"everything paid ({yuan(order.paid_fee)}) is already refunded or on its way back;"
            " nothing to decide",
            metadata={"from": order.fulfilment.value, "to": resolution.value},
        )
    if resolution is Resolution.ACCEPT and order.status is not OrderStatus.PAID:
        return InvalidStateTransitionError(
            f"a {order.status.value} order cannot be accepted and fulfilled; refund it instead",
            metadata={"from": order.status.value, "to": "FULFILMENT_PENDING"},
        )
    return None


def is_resolved_by_refund(order: Order) -> bool:
    return order.fulfilment is Fulfilment.FAILED and order.fulfilment_reason.startswith(RESOLVED_BY_REFUND)


def retry_fulfilment(order: Order, live_refunds_fen: int) -> Move:
    """A FAILED fulfilment runs again only while the money is still all there (no refund under way)."""
    refusal = _retry_refusal(order, live_refunds_fen)
    if refusal is not None:
        raise refusal
    return Move(Fulfilment.PENDING, "", "RETRY", _reopened(order))


def fulfilment_retryable(order: Order, live_refunds_fen: int) -> bool:
    """`retry_fulfilment` would take it. `live_refunds_fen`: the order's refunds that are, or may still
    become, money back (`RefundStatus.counts_against_paid`, ABNORMAL included; `live_refund_amount`)."""
    return _retry_refusal(order, live_refunds_fen) is None


def needs_a_human(order: Order, live_refunds_fen: int) -> bool:
    """Only a person moves it on: HELD while some of what was paid is not going back (resolve it), or a
    FAILED fulfilment that could still be retried (one resolved by a refund, or with money going back,
    is decided and left alone). A HELD late payment whose automatic refund covers everything paid is
    decided: it leaves the queue by itself (`nothing_owed`). `server.adapters.attention` is this in SQL."""
    if order.fulfilment is Fulfilment.HELD:
        return not nothing_owed(order, live_refunds_fen)
    return fulfilment_retryable(order, live_refunds_fen)


def _retry_refusal(order: Order, live_refunds_fen: int) -> DomainError | None:
    if order.fulfilment is not Fulfilment.FAILED or is_resolved_by_refund(order):
        return InvalidStateTransitionError(
            f"only a FAILED fulfilment can be retried; this one is {order.fulfilment.value}",
            metadata={"from": order.fulfilment.value, "to": Fulfilment.PENDING.value},
        )
    if order.status not in RETRY_FULFILMENT_STATUSES or live_refunds_fen > 0:
        return InvalidStateTransitionError(
            "the order is being refunded (or is not PAID); a retry would fulfil money already going back",
            metadata={"from": order.status.value, "to": Fulfilment.PENDING.value},
        )
    return None


def _reopened(order: Order) -> tuple[Event, ...]:
    return (FulfilmentReopened(order.order_id, order.kind.value),)


def operations_refund_no(order_id: str) -> str:
    """One deterministic out_refund_no per order for an operator's refund: repeating it never doubles it."""
    return f"{OPERATIONS_REFUND_PREFIX}{order_id}"[:64]
