"""Fulfilment by the business (product kind EXTERNAL): its answer to FULFILMENT_REQUESTED.

The business confirms (`confirm`) or refuses (`fail`) through EventService. Either settles the
fulfilment ledger row and moves the order in one transaction, exactly as a built-in handler's
success or final failure does: the same events follow (FulfilmentDecided wakes GetOrder(wait_ms);
FulfilmentFailed requests the automatic refund). An answer for an order that is not this account's,
not EXTERNAL, or already decided changes nothing and says why.
"""

from __future__ import annotations

from server.domain.catalogue import ProductKind
from server.domain.clock import Clock
from server.domain.errors import (
    FieldViolation,
    FulfilmentAlreadyDecidedError,
    InvalidArgumentError,
    NotExternalFulfilmentError,
    OrderNotFoundError,
)
from server.domain.feed import DEFAULT_ACCOUNT
from server.domain.fulfilment import GrantState, LedgerStatus
from server.domain.order import FULFILLABLE, Fulfilment, Order, Transition
from server.service.audit import audit
from server.service.context import Caller
from server.service.feed import account_of
from server.service.ports import UnitOfWork, UnitOfWorkFactory
from server.service.retry import Conflict, retry_on_conflict

MAX_TEXT = 255


class ExternalFulfilment:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    def confirm(self, order_id: str, result: str, account: str, caller: Caller) -> Order:
        _check(order_id, "result", result, required=False)
        return self._answer(order_id, account, caller, succeeded=True, text=result)

    def fail(self, order_id: str, reason: str, account: str, caller: Caller) -> Order:
        _check(order_id, "reason", reason, required=True)
        return self._answer(order_id, account, caller, succeeded=False, text=reason)

    def _answer(self, order_id: str, account: str, caller: Caller, *, succeeded: bool, text: str) -> Order:
        # The unit of work runs the reactions after the commit: long-polls wake, the refund is submitted.
        return retry_on_conflict(
            lambda: self._answer_once(order_id, account or DEFAULT_ACCOUNT, caller, succeeded, text),
            "answering a fulfilment request",
        )

    def _answer_once(self, order_id: str, account: str, caller: Caller, succeeded: bool, text: str) -> Order:
        now = self._clock()
        with self._uow() as uow:
            order = _external_order(uow, order_id, account)
            status = LedgerStatus.SUCCEEDED if succeeded else LedgerStatus.FAILED
            if not uow.ledger.decide(order_id, now, status, "" if succeeded else text):
                raise FulfilmentAlreadyDecidedError(f"fulfilment of order {order_id!r} is already decided")
            if succeeded:
                transition = order.fulfilled(now)
                uow.grants.record(order, GrantState.GRANTED, now, article_id=None, days=0)
                cause = f"fulfilled by the business: {text}" if text else "fulfilled by the business"
            else:
                transition = order.fulfilment_failed(text, now, refund=True)
                cause = f"the business could not fulfil: {text}"
            moved = _move(uow, order, transition)
            target = Fulfilment.SUCCEEDED if succeeded else Fulfilment.FAILED
            uow.audit.record(
                audit(order, "fulfilment", order.fulfilment, target, cause[:MAX_TEXT], caller), now
            )
        return moved


def _external_order(uow: UnitOfWork, order_id: str, account: str) -> Order:
    order = uow.orders.get(order_id)
    if order is None or account_of(order) != account:  # another account's order is not even there
        raise OrderNotFoundError(f"order {order_id!r} not found in account {account!r}")
    if order.kind is not ProductKind.EXTERNAL:
        raise NotExternalFulfilmentError(f"order {order_id!r} is {order.kind.value}: orderpay fulfils it")
    if order.fulfilment is not Fulfilment.PENDING:
        raise FulfilmentAlreadyDecidedError(
            f"fulfilment of order {order_id!r} is already {order.fulfilment.value}",
            metadata={"fulfilment": order.fulfilment.value},
        )
    if order.status not in FULFILLABLE:
        raise FulfilmentAlreadyDecidedError(
            f"order {order_id!r} is {order.status.value}: it can no longer be fulfilled",
            metadata={"status": order.status.value},
        )
    return order


def _move(uow: UnitOfWork, order: Order, transition: Transition) -> Order:
    saved = uow.orders.save(order, transition.order)
    if saved is None:
        raise Conflict  # the order moved meanwhile: roll back, re-read, decide again
    uow.record(*transition.events)
    return saved


def _check(order_id: str, field: str, text: str, *, required: bool) -> None:
    problems = []
    if not order_id or len(order_id) > 40:
        problems.append(FieldViolation("order_id", "1-40 characters"))
    if len(text) > MAX_TEXT or (required and not text.strip()):
        problems.append(FieldViolation(field, f"{'1' if required else '0'}-{MAX_TEXT} characters"))
    if problems:
        raise InvalidArgumentError(problems)
