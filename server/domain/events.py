"""Domain events: facts a transition produced, recorded in the transaction that made them true.

The handler table that reacts to them is `server.service.handlers.HANDLERS`.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    | FulfilmentReopened
)
