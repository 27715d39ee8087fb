"""The unit of work: one transaction holding every repository; the read-only view for queries."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from server.domain.events import Event
from server.service.ports.repositories import (
    Audit,
    Claims,
    EventLog,
    EventLogReads,
    Grants,
    Ledger,
    MembershipReads,
    Memberships,
    NotificationReads,
    Notifications,
    OrderReads,
    Orders,
    ProductReads,
    Products,
    ReconReads,
    ReconStore,
    RefundReads,
    Refunds,
    SubscriberReads,
    Subscribers,
)
from server.service.webhook_ports import WebhookReads, WebhookStore


class ReadUnitOfWork(Protocol):
    """Committed data, read outside the writers' queue and any transaction: getters only (`App.read`)."""

    @property
    def products(self) -> ProductReads: ...
    @property
    def orders(self) -> OrderReads: ...
    @property
    def memberships(self) -> MembershipReads: ...
    @property
    def refunds(self) -> RefundReads: ...
    @property
    def notifications(self) -> NotificationReads: ...
    @property
    def recon(self) -> ReconReads: ...
    @property
    def events(self) -> EventLogReads: ...
    @property
    def subscribers(self) -> SubscriberReads: ...
    @property
    def webhooks(self) -> WebhookReads: ...


class UnitOfWork(ReadUnitOfWork, Protocol):
    """One transaction. Repositories write through it; `record` keeps the events it raised."""

    @property
    def products(self) -> Products: ...
    @property
    def orders(self) -> Orders: ...
    @property
    def audit(self) -> Audit: ...
    @property
    def memberships(self) -> Memberships: ...
    @property
    def grants(self) -> Grants: ...
    @property
    def refunds(self) -> Refunds: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def claims(self) -> Claims: ...
    @property
    def notifications(self) -> Notifications: ...
    @property
    def recon(self) -> ReconStore: ...
    @property
    def events(self) -> EventLog: ...
    @property
    def subscribers(self) -> Subscribers: ...
    @property
    def webhooks(self) -> WebhookStore: ...
    @property
    def new_events(self) -> list[Event]: ...
    @property
    def on_feed(self) -> list[Event]:
        """Recorded events whose feed entries a write already appended (see `record_appended`)."""
        ...

    def record(self, *events: Event) -> None: ...
    def record_appended(self, *events: Event) -> None:
        """`record`, for events whose feed entries were written with the change itself (CreateOrder's
        insert-first): their reactions run as usual; the feed append at commit skips them."""
        ...


UnitOfWorkFactory = Callable[[], AbstractContextManager[UnitOfWork]]
ReadFactory = Callable[[], AbstractContextManager[ReadUnitOfWork]]
