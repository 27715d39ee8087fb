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
    """What to write: the order's new fulfilment and reason, and the audit row's from/to."""

    fulfilment: Fulfilment
    fulfilment_reason: str
    audit_to: str


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


def resolve_held(order: Order, resolution: Resolution, reason: str) -> Move:
    """A HELD order (amount mismatch, paid after close) leaves HELD exactly once, one way or the other."""
    if order.fulfilment is not Fulfilment.HELD:
        raise InvalidStateTransitionError(
            f"only a HELD order can be resolved; this one is {order.fulfilment.value}",
            metadata={"from": order.fulfilment.value, "to": resolution.value},
        )
    if resolution is Resolution.ACCEPT:
        if order.status is not OrderStatus.PAID:
            raise InvalidStateTransitionError(
                f"a {order.status.value} order cannot be accepted and fulfilled; refund it instead",
                metadata={"from": order.status.value, "to": "FULFILMENT_PENDING"},
            )
        return Move(Fulfilment.PENDING, "", "ACCEPTED")
    if order.paid_fee <= 0:
        raise InvalidStateTransitionError("nothing was paid, so nothing can be refunded")
    # FAILED: this order will never be fulfilled; the reason says an operator chose the refund.
    return Move(Fulfilment.FAILED, f"{RESOLVED_BY_REFUND}: {reason}"[:255], "REFUND")


def is_resolved_by_refund(order: Order) -> bool:
    return order.fulfilment is Fulfilment.FAILED and order.fulfilment_reason.startswith(RESOLVED_BY_REFUND)


def retry_fulfilment(order: Order, live_refunds_fen: int) -> Move:
    """A FAILED fulfilment runs again only while the money is still all there (no refund under way)."""
    if order.fulfilment is not Fulfilment.FAILED or is_resolved_by_refund(order):
        raise InvalidStateTransitionError(
            f"only a FAILED fulfilment can be retried; this one is {order.fulfilment.value}",
            metadata={"from": order.fulfilment.value, "to": Fulfilment.PENDING.value},
        )
    if order.status not in RETRY_FULFILMENT_STATUSES or live_refunds_fen > 0:
        raise InvalidStateTransitionError(
            "the order is being refunded (or is not PAID); a retry would fulfil money already going back",
            metadata={"from": order.status.value, "to": Fulfilment.PENDING.value},
        )
    return Move(Fulfilment.PENDING, "", "RETRY")


def operations_refund_no(order_id: str) -> str:
    """One deterministic out_refund_no per order for an operator's refund: repeating it never doubles it."""
    return f"{OPERATIONS_REFUND_PREFIX}{order_id}"[:64]
