"""What happens after a payment: every reaction to a domain event, in one table.

`IN_TRANSACTION` reactions run inside the unit of work that raised the event, before it commits:
they write rows only, so they commit or roll back with the transition. A reaction that needs WeChat
Pay writes its request here (a refund row is the outbox: `RefundPollTask` submits it, with the same
`out_refund_no` on every retry) and never calls the network on the path that raised the event.

`AFTER_COMMIT` reactions run in-process once the transaction committed (`EventBus.publish`). They
are prompt, not durable: each has a durable carrier that a job works anyway (OrderPaid's is the
fulfilment ledger row written with the PAID transition, worked by `FulfilmentTask`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from server.domain.clock import Clock
from server.domain.events import (
    AmountMismatch,
    Event,
    FulfilmentDecided,
    FulfilmentFailed,
    FulfilmentRequested,
    GrantRevoked,
    OrderClosed,
    OrderCreated,
    OrderFullyRefunded,
    OrderPaid,
    PaidAfterClose,
    RefundRequested,
    RefundSettled,
)
from server.domain.refund import PlannedRefund
from server.service.audit import audit
from server.service.context import Caller
from server.service.feed import append_feed
from server.service.lookups import require_order
from server.service.ports import DecisionAnnouncer, Fulfiller, UnitOfWork, UnitOfWorkFactory

log = structlog.get_logger("orderpay.events")
LATE_PAYMENT = Caller("system:late-payment")
FULFILMENT = Caller("job:fulfilment")
REFUND_SETTLER = Caller("system:refund")


@dataclass(frozen=True)
class Policy:
    """Settings the reactions obey (bootstrap fills it from Settings)."""

    auto_refund_on_fulfilment_failure: bool = True


@dataclass(frozen=True)
class Reactors:
    """What the after-commit reactions call (built by bootstrap; nothing here calls back into it)."""

    fulfilment: Fulfiller
    decisions: DecisionAnnouncer | None = None  # long-poll waiters (server.adapters.decisions)


# --- reactions inside the transaction -----------------------------------------------------------
def open_fulfilment(uow: UnitOfWork, event: OrderPaid, policy: Policy, now: datetime) -> None:
    """The ledger row (unique per order) is OrderPaid's durable carrier: FulfilmentTask works it."""
    del policy
    uow.ledger.add(event.order_id, event.kind, now)


def refund_late_payment(uow: UnitOfWork, event: PaidAfterClose, policy: Policy, now: datetime) -> None:
    del policy
    order = require_order(uow, event.order_id)
    log.error("payment.held", reason="PAID_AFTER_CLOSE", order_id=order.order_id, paid=order.paid_fee)
    request_refund(uow, order.late_payment_refund(), order.total_fee, now, LATE_PAYMENT)


def refund_failed_fulfilment(uow: UnitOfWork, event: FulfilmentFailed, policy: Policy, now: datetime) -> None:
    if not policy.auto_refund_on_fulfilment_failure:
        return
    order = require_order(uow, event.order_id)
    request_refund(uow, order.compensation_refund(), order.total_fee, now, FULFILMENT)


def revoke_grants(uow: UnitOfWork, event: OrderFullyRefunded, policy: Policy, now: datetime) -> None:
    """Take back what the order granted; VIP days come off the membership, never below now."""
    del policy
    grant = uow.grants.revoke(event.order_id, now)
    if grant is None:
        return
    if grant.days:
        uow.memberships.shorten(grant.user_id, grant.days, now)
    order = require_order(uow, event.order_id)
    cause = "refunded: grant taken back"
    uow.audit.record(audit(order, "grant", grant.state, "REVOKED", cause, REFUND_SETTLER), now)
    uow.record(GrantRevoked(event.order_id))


def request_refund(
    uow: UnitOfWork, request: PlannedRefund, order_total: int, now: datetime, caller: Caller
) -> None:
    """Record the refund for the refund job to submit; a second request under its number is a no-op."""
    if uow.refunds.get(request.out_refund_no) is not None or request.amount <= 0:
        return
    order = require_order(uow, request.order_id)
    committed = uow.refunds.committed_amount(order.order_id)
    if committed + request.amount > order.paid_fee:  # someone refunded meanwhile: leave it to them
        log.warning("refund.not_requested", order_id=order.order_id, out_refund_no=request.out_refund_no)
        return
    uow.refunds.insert(request.new_refund(order_total, now), due_at=now)
    uow.record(RefundRequested(request.out_refund_no))
    cause = f"refund {request.amount} requested: {request.reason}"
    uow.audit.record(audit(order, "refund", None, request.out_refund_no, cause, caller), now)


# --- reactions after the commit -----------------------------------------------------------------
def fulfil_promptly(event: OrderPaid, reactors: Reactors) -> Sequence[Event]:
    return reactors.fulfilment.fulfil(event.order_id)


def alarm_held_payment(event: AmountMismatch, reactors: Reactors) -> Sequence[Event]:
    del reactors
    log.error(
        "payment.held", reason="AMOUNT_MISMATCH", order_id=event.order_id, paid=event.paid, due=event.due
    )
    return ()


def announce_decision(
    event: FulfilmentDecided | AmountMismatch | PaidAfterClose, reactors: Reactors
) -> Sequence[Event]:
    """The order's fulfilment will not change on its own any more: wake whoever long-polls it."""
    if reactors.decisions is not None:
        reactors.decisions.publish(event.order_id)
    return ()


InTransaction = Callable[[UnitOfWork, Any, Policy, datetime], None]
AfterCommit = Callable[[Any, Reactors], Sequence[Event]]


@dataclass(frozen=True)
class Reactions:
    in_transaction: tuple[InTransaction, ...] = ()
    after_commit: tuple[AfterCommit, ...] = ()


# --- THE TABLE ----------------------------------------------------------------------------------
HANDLERS: Mapping[type[Event], Reactions] = {
    OrderPaid: Reactions(in_transaction=(open_fulfilment,), after_commit=(fulfil_promptly,)),
    PaidAfterClose: Reactions(in_transaction=(refund_late_payment,), after_commit=(announce_decision,)),
    AmountMismatch: Reactions(after_commit=(alarm_held_payment, announce_decision)),
    OrderFullyRefunded: Reactions(in_transaction=(revoke_grants,)),
    FulfilmentFailed: Reactions(in_transaction=(refund_failed_fulfilment,)),
    FulfilmentDecided: Reactions(after_commit=(announce_decision,)),
    # Seen outside only, through the event feed (server.service.feed.FEED, appended before commit).
    OrderCreated: Reactions(),
    OrderClosed: Reactions(),
    FulfilmentRequested: Reactions(),
    RefundRequested: Reactions(),
    RefundSettled: Reactions(),
    GrantRevoked: Reactions(),
}


# --- dispatch -----------------------------------------------------------------------------------
def transactional(
    factory: UnitOfWorkFactory,
    clock: Clock,
    policy: Policy,
    handlers: Mapping[type[Event], Reactions] = HANDLERS,
    feed_committed: Callable[[int], None] | None = None,
) -> UnitOfWorkFactory:
    """`factory`, plus: the events recorded in the block get their in-transaction reactions just
    before it commits (reactions may record more events; those are handled too); then, as the last
    step, what they mean to the event feed is appended (last: the append holds the feed's position
    lock until the commit, see server.adapters.event_log). Once committed, `feed_committed(position)`
    wakes this process's Watch streams."""

    @contextmanager
    def unit_of_work() -> Iterator[UnitOfWork]:
        with factory() as uow:
            yield uow
            handled = 0
            while handled < len(uow.new_events):
                event = uow.new_events[handled]
                handled += 1
                for react in handlers[type(event)].in_transaction:
                    react(uow, event, policy, clock())
            position = append_feed(uow, clock()) if uow.new_events else 0
        if position and feed_committed is not None:
            feed_committed(position)

    return unit_of_work


class EventBus:
    """Runs the after-commit reactions of committed events, and of the events those produce."""

    def __init__(self, reactors: Reactors, handlers: Mapping[type[Event], Reactions] = HANDLERS) -> None:
        self._reactors = reactors
        self._handlers = handlers

    def publish(self, events: Sequence[Event]) -> None:
        queue = list(events)
        while queue:
            event = queue.pop(0)
            for react in self._handlers[type(event)].after_commit:
                try:
                    queue.extend(react(event, self._reactors))
                except Exception:  # prompt, not durable: the job behind each reaction retries
                    log.exception("event.reaction_failed", event_type=type(event).__name__)
