"""The Peewee unit of work: one transaction, every repository, and the events it raised."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import peewee as pw

from server.adapters.event_log import PeeweeEventLog, PeeweeSubscribers
from server.adapters.job_queries import JobQueries
from server.adapters.ledger import PeeweeGrants, PeeweeLedger, PeeweeMemberships
from server.adapters.notification_store import PeeweeNotifications
from server.adapters.recon_store import PeeweeReconStore
from server.adapters.repositories import PeeweeAudit, PeeweeOrders, PeeweeProducts, PeeweeRefunds
from server.adapters.webhook_store import PeeweeWebhooks
from server.domain.events import Event
from server.service.ports import ReadFactory, ReadUnitOfWork, UnitOfWork, UnitOfWorkFactory


class PeeweeUnitOfWork:
    """One transaction: commits when the block ends normally, rolls back when it raises."""

    # Stateless repositories, shared: a unit of work is built per transaction, on the hot path too.
    products = PeeweeProducts()
    orders = PeeweeOrders()
    audit = PeeweeAudit()
    memberships = PeeweeMemberships()
    grants = PeeweeGrants()
    refunds = PeeweeRefunds()
    notifications = PeeweeNotifications()
    recon = PeeweeReconStore()
    events = PeeweeEventLog()
    subscribers = PeeweeSubscribers()
    webhooks = PeeweeWebhooks()

    def __init__(self, ledger: PeeweeLedger, claims: JobQueries) -> None:
        self.ledger = ledger
        self.claims = claims
        self.new_events: list[Event] = []
        self.on_feed: list[Event] = []

    def record(self, *events: Event) -> None:
        self.new_events.extend(events)

    def record_appended(self, *events: Event) -> None:
        self.new_events.extend(events)
        self.on_feed.extend(events)


def unit_of_work_factory(db: pw.Database) -> UnitOfWorkFactory:
    # SQLite has one writer at a time. Queueing writers on a process lock is fair and cheap;
    # leaving them to SQLite's busy handler lets unlucky threads starve past the busy timeout.
    writers: AbstractContextManager[object] = (
        threading.Lock() if isinstance(db, pw.SqliteDatabase) else nullcontext()
    )
    ledger, claims = PeeweeLedger(skip_locked=not isinstance(db, pw.SqliteDatabase)), JobQueries(db)

    @contextmanager
    def unit_of_work() -> Iterator[UnitOfWork]:
        with writers, db.connection_context(), db.atomic():
            yield PeeweeUnitOfWork(ledger, claims)

    return unit_of_work


def read_only_factory(db: pw.Database) -> ReadFactory:
    """Reads of committed data: no transaction and no writer queue (WAL readers never block)."""
    ledger, claims = PeeweeLedger(skip_locked=False), JobQueries(db)

    @contextmanager
    def read() -> Iterator[ReadUnitOfWork]:
        with db.connection_context():
            yield PeeweeUnitOfWork(ledger, claims)

    return read
