"""Domain events: facts a transition produced, recorded in the transaction that made them true.

The handler table that reacts to them is `server.service.handlers.HANDLERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the order module raises these events: a runtime import would be a circle
    from server.domain.order import Order


@dataclass(frozen=True)
class OrderPaid:
    """An UNPAID order took the amount due: it is to be fulfilled (by product kind)."""

    order_id: str
    kind: str


@dataclass(frozen=True)
class PaidAfterClose:
    """WeChat took money for an order we had already closed: the money goes back."""

    order_id: str


@dataclass(frozen=True)
class AmountMismatch:
    """Paid, but not the amount due: kept and HELD for a person; nothing is granted."""

    order_id: str
    paid: int
    due: int


@dataclass(frozen=True)
class OrderFullyRefunded:
    order_id: str


@dataclass(frozen=True)
class FulfilmentFailed:
    """Out of attempts (or the handler refused for good): the order is FAILED."""

    order_id: str
    reason: str


@dataclass(frozen=True)
class FulfilmentDecided:
    """Fulfilment reached a terminal state (SUCCEEDED or FAILED): long-polls can answer."""

    order_id: str


@dataclass(frozen=True)
class OrderCreated:
    order: Order  # as inserted: the feed's entry is built from it, not read back in the transaction

    @property
    def order_id(self) -> str:
        return self.order.order_id


@dataclass(frozen=True)
class OrderClosed:
    """An UNPAID order was closed (expired, or closed by its user)."""

    order_id: str


@dataclass(frozen=True)
class FulfilmentRequested:
    """An EXTERNAL order awaits the business's answer (ConfirmFulfilment / FailFulfilment)."""

    order_id: str
    attempt: int


@dataclass(frozen=True)
class RefundRequested:
    out_refund_no: str


@dataclass(frozen=True)
class RefundSettled:
    """A refund reached SUCCESS, CLOSED or ABNORMAL (or left ABNORMAL again)."""

    out_refund_no: str


@dataclass(frozen=True)
class GrantRevoked:
    """What the order granted was taken back (it was refunded in full)."""

    order_id: str


@dataclass(frozen=True)
class ReconExceptionOpened:
    """Reconciliation found a difference with WeChat's bill (one per day, kind and numbers)."""

    bill_date: date
    kind: str
    out_trade_no: str
    out_refund_no: str


@dataclass(frozen=True)
class ReconExceptionResolved:
    exception_id: int


@dataclass(frozen=True)
class FulfilmentReopened:
    """An operator accepted a HELD order or retried a FAILED fulfilment: it is to be fulfilled again."""

    order_id: str
    kind: str


Event = (
    OrderPaid
    | PaidAfterClose
    | AmountMismatch
    | OrderFullyRefunded
    | FulfilmentFailed
    | FulfilmentDecided
    | OrderCreated
    | OrderClosed
    | FulfilmentRequested
    | RefundRequested
    | RefundSettled
    | GrantRevoked
    | ReconExceptionOpened
    | ReconExceptionResolved
    | FulfilmentReopened
)
