"""The order event feed: which domain events the business's systems see, and the use cases around it.

`append_feed` is the unit of work's last step before commit (server.service.handlers.transactional):
it turns the events the transaction recorded into feed entries (the `FEED` table) and appends them, so
an entry commits or rolls back with the change it reports. After the commit the unit of work calls
`FeedCommits.publish`, which wakes this process's Watch streams; other processes are woken by the
database (NOTIFY on PostgreSQL, sent on commit by the append itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from server.domain.clock import Clock
from server.domain.errors import (
    FieldViolation,
    InvalidArgumentError,
    PositionInFutureError,
    SubscriberNotFoundError,
)
from server.domain.events import (
    AmountMismatch,
    Event,
    FulfilmentDecided,
    FulfilmentFailed,
    FulfilmentRequested,
    GrantRevoked,
    OrderClosed,
    OrderCreated,
    OrderPaid,
    PaidAfterClose,
    ReconExceptionOpened,
    ReconExceptionResolved,
    RefundRequested,
    RefundSettled,
)
from server.domain.feed import DEFAULT_ACCOUNT, FeedFilter, FeedType, check_subscriber, feed_filter
from server.domain.order import Fulfilment, Order
from server.domain.refund import RefundStatus
from server.service.feed_ports import FeedEntry, StoredEvent, Subscriber
from server.service.ports import ReadFactory, UnitOfWork, UnitOfWorkFactory

log = structlog.get_logger("orderpay.feed")
Builder = Callable[[UnitOfWork, Event, datetime], FeedEntry | None]


def account_of(order: Order) -> str:
    """The order's merchant account (issue 18: chosen at create and stored on the order)."""
    return order.account or DEFAULT_ACCOUNT


def _order(uow: UnitOfWork, order_id: str) -> Order | None:
    """The order as this transaction leaves it. Every event names an order the transaction just
    wrote; one that is not there is a bug upstream, reported, never a reason to fail the change."""
    order = uow.orders.get(order_id)
    if order is None:
        log.warning("feed.order_missing", order_id=order_id)
    return order


def _order_entry(kind: FeedType) -> Builder:
    def build(uow: UnitOfWork, event: Event, now: datetime) -> FeedEntry | None:
        order = _order(uow, event.order_id)  # type: ignore[union-attr]  # the table's keys all have one
        return None if order is None else FeedEntry(kind, order, now, account_of(order))

    return build


def created_entry(order: Order, now: datetime) -> FeedEntry:
    """ORDER_CREATED, from the order in hand: CreateOrder's insert-first writes it with the order."""
    return FeedEntry(FeedType.ORDER_CREATED, order, now, account_of(order))


def _created(_uow: UnitOfWork, event: Event, now: datetime) -> FeedEntry | None:
    assert isinstance(event, OrderCreated)  # noqa: S101 - the table's key
    return created_entry(event.order, now)


def _requested(uow: UnitOfWork, event: Event, now: datetime) -> FeedEntry | None:
    assert isinstance(event, FulfilmentRequested)  # noqa: S101 - the table's key
    order = _order(uow, event.order_id)
    if order is None:
        return None
    return FeedEntry(FeedType.FULFILMENT_REQUESTED, order, now, account_of(order), attempt=event.attempt)


def _succeeded(uow: UnitOfWork, event: Event, now: datetime) -> FeedEntry | None:
    """FulfilmentDecided ends both ways; the failure has its own event (FulfilmentFailed)."""
    assert isinstance(event, FulfilmentDecided)  # noqa: S101
    order = _order(uow, event.order_id)
    if order is None or order.fulfilment is not Fulfilment.SUCCEEDED:
        return None
    return FeedEntry(FeedType.FULFILMENT_SUCCEEDED, order, now, account_of(order))


_REFUND_TYPES = {
    RefundStatus.PROCESSING: FeedType.REFUND_REQUESTED,
    RefundStatus.SUCCESS: FeedType.REFUND_SUCCEEDED,
    RefundStatus.ABNORMAL: FeedType.REFUND_ABNORMAL,
    RefundStatus.CLOSED: FeedType.REFUND_CLOSED,
}


def _refund(uow: UnitOfWork, event: Event, now: datetime) -> FeedEntry | None:
    assert isinstance(event, RefundRequested | RefundSettled)  # noqa: S101
    refund = uow.refunds.get(event.out_refund_no)
    if refund is None:
        return None
    kind = FeedType.REFUND_REQUESTED if isinstance(event, RefundRequested) else _REFUND_TYPES[refund.status]
    order = _order(uow, refund.order_id)
    if order is None:
        return None
    return FeedEntry(kind, order, now, account_of(order), refund=refund)


def _recon(uow: UnitOfWork, event: Event, now: datetime) -> FeedEntry | None:
    """A reconciliation exception, with its order when the bill line names one of ours."""
    if isinstance(event, ReconExceptionResolved):
        kind, found = FeedType.RECON_EXCEPTION_RESOLVED, uow.recon.get_exception(event.exception_id)
    else:
        assert isinstance(event, ReconExceptionOpened)  # noqa: S101 - the table's keys
        key = (event.kind, event.out_trade_no, event.out_refund_no)
        kind = FeedType.RECON_EXCEPTION_OPENED
        found = next(
            (
                e
                for e in uow.recon.exceptions(event.bill_date)
                if (e.kind.value, e.out_trade_no, e.out_refund_no) == key
            ),
            None,
        )
    if found is None:
        return None
    order_id = uow.recon.order_id_of(found.out_trade_no) if found.out_trade_no else None
    order = uow.orders.get(order_id) if order_id else None
    account = account_of(order) if order is not None else DEFAULT_ACCOUNT
    return FeedEntry(kind, order, now, account, recon=found)


# --- THE FEED TABLE: which recorded events the business's systems see, as what -------------------
FEED: Mapping[type[Event], Builder] = {
    OrderCreated: _created,  # the order in hand: no read on CreateOrder's hot path
    OrderPaid: _order_entry(FeedType.ORDER_PAID),
    AmountMismatch: _order_entry(FeedType.ORDER_HELD),
    PaidAfterClose: _order_entry(FeedType.ORDER_HELD),
    OrderClosed: _order_entry(FeedType.ORDER_CLOSED),
    FulfilmentRequested: _requested,
    FulfilmentDecided: _succeeded,
    FulfilmentFailed: _order_entry(FeedType.FULFILMENT_FAILED),
    RefundRequested: _refund,
    RefundSettled: _refund,
    GrantRevoked: _order_entry(FeedType.GRANT_REVOKED),
    ReconExceptionOpened: _recon,
    ReconExceptionResolved: _recon,
}


def append_feed(uow: UnitOfWork, now: datetime, feed: Mapping[type[Event], Builder] = FEED) -> int:
    """The unit of work's last step: append what its events mean to the feed; the last position, or 0.
    Events whose entries were written with the change itself (`record_appended`) are skipped."""
    entries = []
    for event in uow.new_events:
        if uow.on_feed and any(event is done for done in uow.on_feed):
            continue
        build = feed.get(type(event))
        entry = build(uow, event, now) if build is not None else None
        if entry is not None:
            entries.append(entry)
    return uow.events.append(entries) if entries else 0


class FeedCommits:
    """In-process "the feed grew to position N", published after the commit (any thread)."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[int], None]] = []

    def subscribe(self, listener: Callable[[int], None]) -> None:
        self._listeners.append(listener)

    def publish(self, position: int) -> None:
        for listener in tuple(self._listeners):
            listener(position)


@dataclass(frozen=True)
class WatchStart:
    after: int  # deliver positions above this
    chosen: FeedFilter
    subscriber: str  # "" for an anonymous tail


@dataclass(frozen=True)
class Batch:
    events: Sequence[StoredEvent]
    scanned_to: int  # the next read starts above this (past filtered-out entries too)


@dataclass(frozen=True)
class SubscriberLag:
    subscriber: Subscriber
    head: int

    @property
    def lag(self) -> int:
        return max(0, self.head - self.subscriber.acked_position)


class FeedService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read: ReadFactory,
        clock: Clock,
        *,
        retention: timedelta,
        commits: FeedCommits,
    ) -> None:
        self._uow, self._read, self._clock = uow, read, clock
        self._retention = retention
        self.commits = commits

    def register(self, name: str) -> Subscriber:
        check_subscriber(name)
        with self._uow() as uow:
            return uow.subscribers.register(name, self._clock())

    def start(
        self, subscriber: str, from_position: int | None, types: Sequence[str], account: str
    ) -> WatchStart:
        """Validate a Watch and say where it starts: after `from_position` when given, else after the
        subscriber's acknowledgement, else (an anonymous tail) at the head."""
        chosen = feed_filter(types, account)
        if from_position is not None and from_position < 0:
            raise InvalidArgumentError([FieldViolation("from_position", "must be >= 0")])
        with self._read() as uow:
            head = uow.events.head()
            found = uow.subscribers.get(check_subscriber(subscriber)) if subscriber else None
        if subscriber and found is None:
            raise SubscriberNotFoundError(f"subscriber {subscriber!r} is not registered")
        if from_position is not None:
            _check_not_future("from_position", from_position, head)
            return WatchStart(from_position, chosen, subscriber)
        after = found.acked_position if found is not None else head
        return WatchStart(after, chosen, subscriber)

    def read(self, after: int, chosen: FeedFilter, limit: int) -> Batch:
        """At most `limit` entries above `after`. The head is read first: every position up to it has
        committed (the log hands positions out in commit order), so nothing below it can appear later."""
        with self._read() as uow:
            head = uow.events.head()
            events = uow.events.read_after(after, head, chosen, limit) if head > after else []
        full = len(events) == limit
        return Batch(events, events[-1].position if full else max(head, after))

    def ack(self, name: str, position: int) -> Subscriber:
        check_subscriber(name)
        if position < 0:
            raise InvalidArgumentError([FieldViolation("position", "must be >= 0")])
        with self._uow() as uow:
            _check_not_future("position", position, uow.events.head())
            acked = uow.subscribers.ack(name, position, self._clock())
        if acked is None:
            raise SubscriberNotFoundError(f"subscriber {name!r} is not registered")
        return acked

    def head(self) -> int:
        with self._read() as uow:
            return uow.events.head()

    def lags(self) -> list[SubscriberLag]:
        with self._read() as uow:
            head = uow.events.head()
            return [SubscriberLag(s, head) for s in uow.subscribers.all()]

    def purgeable_below(self) -> int:
        """Entries at or below this may go (when old enough): every registered subscriber acked them."""
        with self._read() as uow:
            lowest = uow.subscribers.lowest_ack()
            head = uow.events.head()
        return head if lowest is None else min(lowest, head)

    def purge(self, *, dry_run: bool = False, batch: int = 1000) -> int:
        """Drop entries older than the retention that every registered subscriber acknowledged."""
        cutoff, keep_after, total = self._clock() - self._retention, self.purgeable_below(), 0
        if dry_run:
            with self._read() as uow:
                return uow.events.count_purgeable(cutoff, keep_after)
        while True:
            with self._uow() as uow:
                deleted = uow.events.purge(cutoff, keep_after, batch)
            total += deleted
            if deleted < batch:
                return total


def _check_not_future(field: str, position: int, head: int) -> None:
    if position > head:
        raise PositionInFutureError(
            [FieldViolation(field, f"{position} is past the head of the feed ({head})")]
        )
