"""What happens after a payment: every reaction to a domain event, in one table.

`IN_TRANSACTION` reactions run inside the unit of work that raised the event, before it commits:
they write rows only, so they commit or roll back with the transition. A reaction that needs WeChat
Pay writes its request here (a refund row is the outbox: `RefundPollTask` submits it, with the same
`out_refund_no` on every retry) and never calls the network on the path that raised the event.

`AFTER_COMMIT` reactions run in-process once the outermost unit of work committed and released the
writer lock (`transactional`): whoever raised the event never publishes it. They are prompt, not
durable: each has a durable carrier that a job works anyway (OrderPaid's is the fulfilment ledger row
written with the PAID transition, worked by `FulfilmentTask`). One that raises is logged; the commit
stands. Nothing runs after a rollback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
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
    FulfilmentReopened,
    FulfilmentRequested,
    GrantRevoked,
    OrderClosed,
    OrderCreated,
    OrderFullyRefunded,
    OrderPaid,
    PaidAfterClose,
    ReconExceptionOpened,
    ReconExceptionResolved,
    RefundRequested,
    RefundSettled,
)
from server.domain.refund import PlannedRefund
from server.service.audit import audit
from server.service.context import Caller
from server.service.feed import append_feed
from server.service.lookups import require_order
from server.service.ports import DecisionAnnouncer, FeedAnnouncer, Fulfiller, UnitOfWork, UnitOfWorkFactory

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

    fulfilment: Fulfiller | None = None  # None: no payments part, so nothing is ever fulfilled
    decisions: DecisionAnnouncer | None = None  # long-poll waiters (server.adapters.decisions)
    prompt_fulfilment: bool = True  # False: OrderPaid leaves the order to FulfilmentTask (tests)
    feed: FeedAnnouncer | None = None  # this process's event-feed Watch streams (server.service.feed)


# --- reactions inside the transaction -----------------------------------------------------------
def open_fulfilment(uow: UnitOfWork, event: OrderPaid, policy: Policy, now: datetime) -> None:
    """The ledger row (unique per order) is OrderPaid's durable carrier: FulfilmentTask works it."""
    del policy
    uow.ledger.add(event.order_id, event.kind, now)


def reopen_fulfilment(uow: UnitOfWork, event: FulfilmentReopened, policy: Policy, now: datetime) -> None:
    """An operator accepted a HELD order or retried a FAILED one: a fresh PENDING ledger row, due now."""
    del policy
    uow.ledger.restart(event.order_id, event.kind, now)


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
def fulfil_promptly(event: OrderPaid, reactors: Reactors) -> None:
    if reactors.fulfilment is not None and reactors.prompt_fulfilment:
        reactors.fulfilment.fulfil(event.order_id)


def fulfil_reopened(event: FulfilmentReopened, reactors: Reactors) -> None:
    """The operator asked for it: run it now (even where OrderPaid leaves fulfilment to the job)."""
    if reactors.fulfilment is not None:
        reactors.fulfilment.fulfil(event.order_id)


def alarm_held_payment(event: AmountMismatch, reactors: Reactors) -> None:
    del reactors
    log.error(
        "payment.held", reason="AMOUNT_MISMATCH", order_id=event.order_id, paid=event.paid, due=event.due
    )


def announce_decision(event: FulfilmentDecided | AmountMismatch | PaidAfterClose, reactors: Reactors) -> None:
    """The order's fulfilment will not change on its own any more: wake whoever long-polls it."""
    if reactors.decisions is not None:
        reactors.decisions.publish(event.order_id)


def wake_watch_streams(event: Event, reactors: Reactors) -> None:
    """The feed grew (the entry committed with the transition): this process's Watch streams read on.
    Other processes hear it from the database (the append NOTIFYs on PostgreSQL, sent on commit)."""
    del event
    if reactors.feed is not None:
        reactors.feed.publish(0)


InTransaction = Callable[[UnitOfWork, Any, Policy, datetime], None]
AfterCommit = Callable[[Any, Reactors], None]


@dataclass(frozen=True)
class Reactions:
    in_transaction: tuple[InTransaction, ...] = ()
    after_commit: tuple[AfterCommit, ...] = ()


# --- THE TABLE ----------------------------------------------------------------------------------
# Every event the business's systems see (server.service.feed.FEED: appended as the transaction's last
# step) wakes the Watch streams after the commit, before slower reactions (prompt fulfilment) run.
HANDLERS: Mapping[type[Event], Reactions] = {
    OrderPaid: Reactions(
        in_transaction=(open_fulfilment,), after_commit=(wake_watch_streams, fulfil_promptly)
    ),
    PaidAfterClose: Reactions(
        in_transaction=(refund_late_payment,), after_commit=(wake_watch_streams, announce_decision)
    ),
    AmountMismatch: Reactions(after_commit=(wake_watch_streams, alarm_held_payment, announce_decision)),
    OrderFullyRefunded: Reactions(in_transaction=(revoke_grants,)),
    FulfilmentFailed: Reactions(
        in_transaction=(refund_failed_fulfilment,), after_commit=(wake_watch_streams,)
    ),
    FulfilmentDecided: Reactions(after_commit=(wake_watch_streams, announce_decision)),
    FulfilmentReopened: Reactions(in_transaction=(reopen_fulfilment,), after_commit=(fulfil_reopened,)),
    OrderCreated: Reactions(after_commit=(wake_watch_streams,)),
    OrderClosed: Reactions(after_commit=(wake_watch_streams,)),
    FulfilmentRequested: Reactions(after_commit=(wake_watch_streams,)),
    RefundRequested: Reactions(after_commit=(wake_watch_streams,)),
    RefundSettled: Reactions(after_commit=(wake_watch_streams,)),
    GrantRevoked: Reactions(after_commit=(wake_watch_streams,)),
    ReconExceptionOpened: Reactions(after_commit=(wake_watch_streams,)),
    ReconExceptionResolved: Reactions(after_commit=(wake_watch_streams,)),
}


# --- dispatch -----------------------------------------------------------------------------------
def transactional(
    factory: UnitOfWorkFactory,
    clock: Clock,
    policy: Policy,
    reactors: Callable[[UnitOfWorkFactory], Reactors] | None = None,
    handlers: Mapping[type[Event], Reactions] = HANDLERS,
) -> UnitOfWorkFactory:
    """`factory`, plus the events recorded in each block: their in-transaction reactions run just before
    it commits (reactions may record more events; those are handled too), their after-commit reactions
    once the outermost block of this thread committed and released the writer lock.

    `reactors` builds what the after-commit reactions call from the finished factory: the fulfilment
    worker commits through the very unit of work whose commits call it."""
    pending = threading.local()  # per thread: the committed events of each enclosing block

    @contextmanager
    def unit_of_work() -> Iterator[UnitOfWork]:
        stack: list[list[Event]] = pending.__dict__.setdefault("stack", [])
        committed: list[Event] = []
        stack.append(committed)
        try:
            with factory() as uow:
                yield uow
                _react_in_transaction(uow, handlers, policy, clock)
                # Last, so the feed's position lock is held from here to the commit only
                # (server.adapters.event_log): the events' entries on the order event feed.
                if uow.new_events:
                    append_feed(uow, clock())
            committed.extend(uow.new_events)
        finally:
            stack.pop()
        if stack:  # a block inside another: its events wait for the outer commit (or rollback)
            stack[-1].extend(committed)
        else:
            _react_after_commit(committed, handlers, built)

    built = reactors(unit_of_work) if reactors is not None else Reactors()
    return unit_of_work


def _react_in_transaction(
    uow: UnitOfWork, handlers: Mapping[type[Event], Reactions], policy: Policy, clock: Clock
) -> None:
    handled = 0
    while handled < len(uow.new_events):
        event = uow.new_events[handled]
        handled += 1
        for react in handlers[type(event)].in_transaction:
            react(uow, event, policy, clock())


def _react_after_commit(
    events: list[Event], handlers: Mapping[type[Event], Reactions], reactors: Reactors
) -> None:
    for event in events:
        for react in handlers[type(event)].after_commit:
            try:
                react(event, reactors)
            except Exception:  # prompt, not durable: the job behind each reaction retries
                log.exception("event.reaction_failed", event_type=type(event).__name__)
