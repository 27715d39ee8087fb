"""An in-memory unit of work: the repositories the payment and refund rules need, no database.

Each unit of work works on a copy of the shared state and swaps it in on commit, so a block that
raises leaves nothing behind, as a rolled-back transaction would.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from server.domain.catalogue import Product
from server.domain.events import Event
from server.domain.fulfilment import FulfilmentClaim, GrantState, LedgerStatus
from server.domain.membership import Membership, extended
from server.domain.notification import NotificationStatus
from server.domain.order import Order, OrderStatus
from server.domain.refund import Refund, RefundStatus
from server.service.feed_ports import FeedEntry
from server.service.handlers import Reactions, Reactors
from server.service.ports import UnitOfWork, UnitOfWorkFactory
from server.service.shapes import AuditEvent, Cursor, Grant, OrderInsertConflict, StoredNotification


@dataclass
class State:
    products: dict[str, Product] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    audit: list[AuditEvent] = field(default_factory=list)
    refunds: dict[str, Refund] = field(default_factory=dict)
    due_at: dict[str, datetime] = field(default_factory=dict)
    ledger: dict[str, str] = field(default_factory=dict)  # order_id -> status
    grants: dict[str, Grant] = field(default_factory=dict)
    memberships: dict[str, Membership] = field(default_factory=dict)
    feed: list[FeedEntry] = field(default_factory=list)  # the event log, position = index + 1
    notifications: dict[str, StoredNotification] = field(default_factory=dict)
    commits: int = 0


class _Orders:
    def __init__(self, state: State) -> None:
        self.s = state

    def get(self, order_id: str) -> Order | None:
        return self.s.orders.get(order_id)

    def get_by_key(self, user_id: str, request_id: str) -> Order | None:
        return next(
            (o for o in self.s.orders.values() if (o.user_id, o.request_id) == (user_id, request_id)), None
        )

    def get_by_out_trade_no(self, out_trade_no: str) -> Order | None:
        return next((o for o in self.s.orders.values() if o.out_trade_no == out_trade_no), None)

    def get_unpaid(self, user_id: str, product_id: str) -> Order | None:
        return next(
            (
                o
                for o in self.s.orders.values()
                if (o.user_id, o.product_id, o.status) == (user_id, product_id, OrderStatus.UNPAID)
            ),
            None,
        )

    def insert(self, order: Order) -> None:
        if order.order_id in self.s.orders or self.get_by_key(order.user_id, order.request_id):
            raise OrderInsertConflict(order.order_id)
        self.s.orders[order.order_id] = order

    def insert_first(
        self, order: Order, created: AuditEvent, now: datetime, entry: FeedEntry | None = None
    ) -> bool:
        unpaid = order.status is OrderStatus.UNPAID and self.get_unpaid(order.user_id, order.product_id)
        if order.order_id in self.s.orders or self.get_by_key(order.user_id, order.request_id) or unpaid:
            return False
        self.s.orders[order.order_id] = order
        self.s.audit.append(created)
        if entry is not None:
            self.s.feed.append(entry)
        return True

    def save(self, before: Order, after: Order) -> Order | None:
        current = self.s.orders.get(before.order_id)
        if current is None or current.version != before.version:
            return None
        saved = replace(after, version=before.version + 1)
        self.s.orders[before.order_id] = saved
        return saved

    def list_for_user(
        self,
        user_id: str,
        status: OrderStatus | None,
        after: Cursor | None,
        limit: int,
        account: str | None = None,
    ) -> Sequence[tuple[Order, Cursor]]:
        raise NotImplementedError


class _Audit:
    def __init__(self, state: State) -> None:
        self.s = state

    def record(self, event: AuditEvent, now: datetime) -> None:
        self.s.audit.append(event)


class _Refunds:
    def __init__(self, state: State) -> None:
        self.s = state

    def get(self, out_refund_no: str) -> Refund | None:
        return self.s.refunds.get(out_refund_no)

    def insert(self, refund: Refund, due_at: datetime) -> None:
        assert refund.out_refund_no not in self.s.refunds  # the unique index
        self.s.refunds[refund.out_refund_no] = replace(refund, next_poll_at=due_at)
        self.s.due_at[refund.out_refund_no] = due_at

    def save(self, before: Refund, after: Refund) -> Refund | None:
        current = self.s.refunds.get(before.out_refund_no)
        if current is None or current.version != before.version:
            return None
        saved = replace(after, version=before.version + 1)
        self.s.refunds[before.out_refund_no] = saved
        if saved.next_poll_at is not None:
            self.s.due_at[before.out_refund_no] = saved.next_poll_at
        else:
            self.s.due_at.pop(before.out_refund_no, None)
        return saved

    def committed_amount(self, order_id: str) -> int:
        return sum(
            r.amount
            for r in self.s.refunds.values()
            if r.order_id == order_id and r.status.counts_against_paid
        )

    def stop_polling(self, out_refund_no: str, now: datetime) -> bool:
        refund = self.s.refunds.get(out_refund_no)
        if (
            refund is None
            or refund.status is not RefundStatus.PROCESSING
            or out_refund_no not in self.s.due_at
        ):
            return False
        del self.s.due_at[out_refund_no]
        return True


class _Ledger:
    def __init__(self, state: State) -> None:
        self.s = state

    def add(self, order_id: str, kind: str, now: datetime) -> None:
        self.s.ledger.setdefault(order_id, LedgerStatus.PENDING.value)

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[FulfilmentClaim]:
        return []

    def claim_order(self, order_id: str, now: datetime, lease: timedelta) -> FulfilmentClaim | None:
        return None

    def settle(self, claim: FulfilmentClaim, now: datetime, **kwargs: Any) -> bool:
        return False

    def decide(self, order_id: str, now: datetime, status: LedgerStatus, error: str) -> bool:
        if self.s.ledger.get(order_id) != LedgerStatus.PENDING.value:
            return False
        self.s.ledger[order_id] = status.value
        return True

    def oldest_due(self, now: datetime) -> datetime | None:
        return None

    def status(self, order_id: str) -> LedgerStatus | None:
        status = self.s.ledger.get(order_id)
        return None if status is None else LedgerStatus(status)

    def restart(self, order_id: str, kind: str, now: datetime) -> None:
        if self.s.ledger.get(order_id) != LedgerStatus.SUCCEEDED.value:
            self.s.ledger[order_id] = LedgerStatus.PENDING.value

    def due_now(self, order_id: str, now: datetime) -> bool:
        return self.s.ledger.get(order_id) == LedgerStatus.PENDING.value

    def stop(self, order_id: str, now: datetime, error: str) -> bool:
        if self.s.ledger.get(order_id) != LedgerStatus.PENDING.value:
            return False
        self.s.ledger[order_id] = LedgerStatus.FAILED.value
        return True


class _Grants:
    def __init__(self, state: State) -> None:
        self.s = state

    def record(
        self, order: Order, state: GrantState, now: datetime, *, article_id: str | None, days: int
    ) -> None:
        self.s.grants[order.order_id] = Grant(order.order_id, order.user_id, state, days)

    def revoke(self, order_id: str, now: datetime) -> Grant | None:
        grant = self.s.grants.get(order_id)
        if grant is None or grant.state is GrantState.REVOKED:
            return None
        self.s.grants[order_id] = replace(grant, state=GrantState.REVOKED)
        return grant


class _Memberships:
    def __init__(self, state: State) -> None:
        self.s = state

    def get(self, user_id: str) -> Membership | None:
        return self.s.memberships.get(user_id)

    def extend(self, user_id: str, days: int, now: datetime) -> datetime:
        current = self.s.memberships.get(user_id)
        expires = extended(current.expires_at if current else None, now, days)
        self.s.memberships[user_id] = Membership(user_id, expires)
        return expires

    def shorten(self, user_id: str, days: int, now: datetime) -> None:
        current = self.s.memberships.get(user_id)
        if current is not None and current.expires_at is not None:
            shortened = max(now, current.expires_at - timedelta(days=days))
            self.s.memberships[user_id] = Membership(user_id, shortened)


class _EventLog:
    """Appends only: the rules under test write the feed; reading it is the database's job."""

    def __init__(self, state: State) -> None:
        self.s = state

    def append(self, entries: Sequence[FeedEntry]) -> int:
        self.s.feed.extend(entries)
        return len(self.s.feed)


class _Notifications:
    def __init__(self, state: State) -> None:
        self.s = state

    def get(self, notification_id: str) -> StoredNotification | None:
        return self.s.notifications.get(notification_id)

    def insert(
        self,
        notification_id: str,
        event_type: str,
        headers: Mapping[str, str],
        body: str,
        now: datetime,
        account: str | None = None,
    ) -> bool:
        if notification_id in self.s.notifications:
            return False
        self.s.notifications[notification_id] = StoredNotification(
            notification_id, event_type, dict(headers), body, NotificationStatus.RECEIVED, "", 0, now, 1
        )
        return True

    def finish(self, notification_id: str, status: NotificationStatus, outcome: str, now: datetime) -> None:
        row = self.s.notifications[notification_id]
        if row.status is not NotificationStatus.PROCESSED:
            self.s.notifications[notification_id] = replace(
                row, status=status, outcome=outcome, attempts=row.attempts + 1, version=row.version + 1
            )

    def record_attempt(self, notification_id: str, now: datetime) -> None:
        raise NotImplementedError

    def claim(self, row: StoredNotification, now: datetime) -> bool:
        raise NotImplementedError

    def due(self, cutoff: datetime, limit: int, max_attempts: int) -> list[StoredNotification]:
        raise NotImplementedError


class _Unused:
    """Repositories the rules under test never touch."""

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"the fake unit of work has no {name}")


class FakeUnitOfWork:
    def __init__(self, state: State) -> None:
        self.products: Any = _Unused()
        self.orders = _Orders(state)
        self.audit = _Audit(state)
        self.refunds = _Refunds(state)
        self.ledger = _Ledger(state)
        self.grants = _Grants(state)
        self.memberships = _Memberships(state)
        self.claims: Any = _Unused()
        self.events: Any = _EventLog(state)
        self.subscribers: Any = _Unused()
        self.notifications = _Notifications(state)
        self.new_events: list[Event] = []
        self.on_feed: list[Event] = []

    def record(self, *events: Event) -> None:
        self.new_events.extend(events)

    def record_appended(self, *events: Event) -> None:
        self.new_events.extend(events)
        self.on_feed.extend(events)


class FakeDatabase:
    """The shared state and the factory that hands out units of work over it."""

    def __init__(self) -> None:
        self.state = State()

    def factory(self) -> UnitOfWorkFactory:
        @contextmanager
        def unit_of_work() -> Iterator[UnitOfWork]:
            working = copy.deepcopy(self.state)
            yield FakeUnitOfWork(working)
            working.commits += 1
            self.state = working  # commit; an exception above leaves self.state untouched

        return unit_of_work

    def audit_fields(self, order_id: str) -> list[tuple[str, str | None, str]]:
        return [(a.field, a.from_value, a.to_value) for a in self.state.audit if a.order_id == order_id]

    def audit_causes(self, order_id: str) -> list[str]:
        return [a.cause for a in self.state.audit if a.order_id == order_id]


def recording(
    handlers: Mapping[type[Event], Reactions], published: list[Event]
) -> dict[type[Event], Reactions]:
    """`handlers` plus one more after-commit reaction per event: it appends the event to `published`,
    so a test sees exactly which events a commit published, and how often."""

    def record(event: Event, reactors: Reactors) -> None:
        del reactors
        published.append(event)

    return {
        kind: replace(reactions, after_commit=(*reactions.after_commit, record))
        for kind, reactions in handlers.items()
    }
