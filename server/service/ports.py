"""What the service layer needs from the outside, as Protocols; adapters implement them.

Everything that writes is a repository on the unit of work, so one transaction holds it all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from server.domain.catalogue import Product
from server.domain.events import Event
from server.domain.fulfilment import FulfilmentClaim, GrantState, LedgerStatus
from server.domain.membership import Membership
from server.domain.notification import Notification
from server.domain.order import Order, OrderStatus
from server.domain.provider import (
    AbnormalRefundRequest,
    ChannelRules,
    CloseOutcome,
    MerchantIdentity,
    PayView,
    Prepay,
    PrepayRequest,
    RefundReport,
    RefundRequest,
    TransactionReport,
)
from server.domain.refund import Refund
from server.service.recon_ports import ReconStore

__all__ = ["MerchantIdentity"]  # re-exported: the use cases name the merchant they act for


@dataclass(frozen=True)
class Cursor:
    """Keyset position for ListOrders: strictly older than (created_at, seq)."""

    created_at: datetime
    seq: int


@dataclass(frozen=True)
class AuditEvent:
    order_id: str
    field: str
    from_value: str | None
    to_value: str
    cause: str
    actor: str
    request_id: str


@dataclass(frozen=True)
class StoredNotification:
    notification_id: str
    event_type: str
    headers: dict[str, str]
    body: str
    status: str  # RECEIVED | PROCESSED | FAILED
    outcome: str
    attempts: int
    received_at: datetime
    version: int


@dataclass(frozen=True)
class Grant:
    order_id: str
    user_id: str
    state: GrantState
    days: int


@dataclass(frozen=True)
class PurgeReport:
    orders: int
    events: int


class OrderInsertConflict(Exception):  # noqa: N818 - a signal between adapter and service, not an error
    """The insert hit a unique index; the service reads the winner."""


class Products(Protocol):
    def get(self, product_id: str) -> Product | None: ...
    def list_active(self, kind: str | None = None) -> list[Product]: ...
    def reserve_stock(self, product_id: str, quantity: int) -> bool: ...
    def release_stock(self, product_id: str, quantity: int) -> None: ...
    def upsert(self, product: Product, now: datetime) -> bool: ...


class Orders(Protocol):
    def get(self, order_id: str) -> Order | None: ...
    def get_by_key(self, user_id: str, request_id: str) -> Order | None: ...
    def get_by_out_trade_no(self, out_trade_no: str) -> Order | None: ...
    def get_unpaid(self, user_id: str, product_id: str) -> Order | None: ...
    def insert(self, order: Order) -> None: ...
    def save(self, before: Order, after: Order) -> Order | None:
        """Persist what changed from `before` if the row is still at `before.version`; else None."""
        ...

    def list_for_user(
        self, user_id: str, status: OrderStatus | None, after: Cursor | None, limit: int
    ) -> Sequence[tuple[Order, Cursor]]: ...


class Audit(Protocol):
    def record(self, event: AuditEvent, now: datetime) -> None: ...


class Memberships(Protocol):
    def get(self, user_id: str) -> Membership | None: ...
    def extend(self, user_id: str, days: int, now: datetime) -> datetime: ...
    def shorten(self, user_id: str, days: int, now: datetime) -> None: ...


class Grants(Protocol):
    def record(
        self, order: Order, state: GrantState, now: datetime, *, article_id: str | None, days: int
    ) -> None: ...
    def revoke(self, order_id: str, now: datetime) -> Grant | None:
        """Mark the order's live grant REVOKED; returns it as it was, or None."""
        ...


class Refunds(Protocol):
    def get(self, out_refund_no: str) -> Refund | None: ...
    def insert(self, refund: Refund, due_at: datetime) -> None:
        """`due_at`: when the refund job should submit it if nobody has by then."""
        ...

    def compare_and_set(self, refund: Refund, **changes: Any) -> Refund | None: ...
    def committed_amount(self, order_id: str) -> int: ...
    def stop_polling(self, out_refund_no: str, now: datetime) -> bool:
        """An operator stops the poller for a PROCESSING refund; False when it was not being polled."""
        ...


class Ledger(Protocol):
    """The fulfilment ledger (one row per paid order): the outbox that OrderPaid writes, worked by the
    fulfilment job and moved by hand by an operator."""

    def add(self, order_id: str, kind: str, now: datetime) -> None: ...
    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[FulfilmentClaim]: ...
    def claim_order(self, order_id: str, now: datetime, lease: timedelta) -> FulfilmentClaim | None: ...
    def settle(
        self,
        claim: FulfilmentClaim,
        now: datetime,
        *,
        status: LedgerStatus,
        attempts: int | None = None,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> bool: ...
    def oldest_due(self, now: datetime) -> datetime | None: ...
    def status(self, order_id: str) -> LedgerStatus | None: ...
    def restart(self, order_id: str, kind: str, now: datetime) -> None: ...
    def due_now(self, order_id: str, now: datetime) -> bool: ...
    def stop(self, order_id: str, now: datetime, error: str) -> bool: ...


class Claims(Protocol):
    """The background jobs' claims (each pushes a column forward as a lease), and what `orderpay purge`
    selects and deletes: never-paid CLOSED orders and their audit rows."""

    def claim_overdue_unpaid(self, now: datetime, limit: int, lease: timedelta) -> list[str]: ...
    def oldest_overdue_unpaid(self, now: datetime) -> datetime | None: ...
    def claim_due_syncs(self, now: datetime, limit: int, lease: timedelta) -> list[str]: ...
    def oldest_due_sync(self, now: datetime) -> datetime | None: ...
    def claim_due_refund_polls(self, now: datetime, limit: int, lease: timedelta) -> list[str]: ...
    def oldest_due_refund_poll(self, now: datetime) -> datetime | None: ...
    def purgeable_orders(self, cutoff: datetime, after_seq: int = 0) -> list[tuple[int, str]]: ...
    def count_events(self, order_ids: Sequence[str]) -> int: ...
    def delete_orders(self, order_ids: Sequence[str]) -> PurgeReport: ...


class Notifications(Protocol):
    """Raw provider notifications, stored (unique on id) in the transaction that applies them."""

    def get(self, notification_id: str) -> StoredNotification | None: ...
    def insert(
        self, notification_id: str, event_type: str, headers: Mapping[str, str], body: str, now: datetime
    ) -> bool:
        """Insert first: False when the id is already there (the transaction stays usable)."""
        ...

    def finish(self, notification_id: str, status: str, outcome: str, now: datetime) -> None: ...
    def record_attempt(self, notification_id: str, now: datetime) -> None: ...
    def claim(self, row: StoredNotification, now: datetime) -> bool: ...
    def due(self, cutoff: datetime, limit: int, max_attempts: int) -> list[StoredNotification]: ...


class UnitOfWork(Protocol):
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
    def new_events(self) -> list[Event]: ...
    def record(self, *events: Event) -> None: ...


UnitOfWorkFactory = Callable[[], AbstractContextManager[UnitOfWork]]


class DecisionAnnouncer(Protocol):
    """Tells whoever waits on an order that its fulfilment was decided (after the commit)."""

    def publish(self, order_id: str) -> None: ...


class Fulfiller(Protocol):
    """Fulfil one paid order now (its transactions publish their own events)."""

    def fulfil(self, order_id: str) -> None: ...


class HasOutcome(Protocol):
    @property
    def outcome(self) -> str: ...


class TransactionApplier(Protocol):
    """PaymentService as the notification path needs it: apply inside the caller's transaction."""

    def apply_in(self, uow: UnitOfWork, report: TransactionReport, *, source: str) -> HasOutcome: ...


class RefundApplier(Protocol):
    def apply_in(self, uow: UnitOfWork, report: RefundReport, *, source: str) -> HasOutcome: ...


class PaymentGateway(Protocol):
    """One merchant's payment provider in our terms (server.wxpay.gateway.WeChatPayGateway is WeChat Pay's).

    Failures: ProviderRejectedError (a business "no" not covered by a typed answer) or
    ProviderUnavailableError (maybe done, maybe not: ask again with the same number).
    """

    def channel(self, name: str) -> ChannelRules | None:
        """What paying on channel `name` needs; None: the provider has no such channel."""
        ...

    def prepay(self, request: PrepayRequest) -> Prepay: ...
    def pay_view(self, channel: str, prepay: Prepay, at: datetime) -> PayView:
        """How a client pays `prepay`, made at `at` on `channel`, and until when."""
        ...

    def query_transaction(self, out_trade_no: str) -> TransactionReport | None:
        """None: the provider never saw the order."""
        ...

    def close(self, out_trade_no: str) -> CloseOutcome: ...
    def refund(self, request: RefundRequest) -> RefundReport: ...
    def query_refund(self, out_refund_no: str) -> RefundReport: ...
    def apply_abnormal_refund(self, request: AbnormalRefundRequest) -> RefundReport: ...


class Gateways(Protocol):
    """The payment gateway of each merchant we act for (server.adapters.gateways.MerchantGateways)."""

    def gateway_for(self, merchant: MerchantIdentity) -> PaymentGateway: ...


# Verifies and decrypts a signed notification (headers, raw body, now as unix seconds), or raises
# a server.domain.notification.NotificationRejected: the provider adapter supplies it.
NotificationParser = Callable[[Mapping[str, str], bytes, float], Notification]
