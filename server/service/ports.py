"""What the service layer needs from the outside, as Protocols; adapters implement them.

Everything that writes is a repository on the unit of work, so one transaction holds it all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta
from typing import Protocol

from server.domain.catalogue import Product
from server.domain.events import Event
from server.domain.feed import FeedFilter
from server.domain.fulfilment import FulfilmentClaim, GrantState, LedgerStatus
from server.domain.membership import Membership
from server.domain.notification import Notification, NotificationStatus
from server.domain.order import Order, OrderStatus
from server.domain.outcomes import ApplyOutcome
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
    ResolveAbnormal,
    TransactionReport,
)
from server.domain.recon_records import BillRow, FundBill, LocalPayment, LocalRefund, TradeBill
from server.domain.reconciliation import Difference, ExceptionKind, ExceptionStatus, Window
from server.domain.refund import Refund
from server.service.context import Caller
from server.service.feed_ports import FeedEntry, StoredEvent, Subscriber
from server.service.recon_ports import Claim, DayReport, ReconException, RunSummary
from server.service.shapes import (
    AuditEvent,
    Batch,
    Cursor,
    Grant,
    JobResult,
    PurgeReport,
    StoredNotification,
)
from server.service.webhook_ports import WebhookReads, WebhookStore

__all__ = ["MerchantIdentity"]  # re-exported: the use cases name the merchant they act for


# --- the repositories: what reads see (getters), and what a transaction adds to them -----------------
class ProductReads(Protocol):
    def get(self, product_id: str) -> Product | None: ...
    def list_active(self, kind: str | None = None) -> list[Product]: ...


class Products(ProductReads, Protocol):
    def reserve_stock(self, product_id: str, quantity: int) -> bool: ...
    def release_stock(self, product_id: str, quantity: int) -> None: ...
    def upsert(self, product: Product, now: datetime) -> bool: ...


class OrderReads(Protocol):
    def get(self, order_id: str) -> Order | None: ...
    def get_by_key(self, user_id: str, request_id: str) -> Order | None: ...
    def get_by_out_trade_no(self, out_trade_no: str) -> Order | None: ...
    def get_unpaid(self, user_id: str, product_id: str) -> Order | None: ...
    def list_for_user(
        self, user_id: str, status: OrderStatus | None, after: Cursor | None, limit: int
    ) -> Sequence[tuple[Order, Cursor]]: ...


class Orders(OrderReads, Protocol):
    def insert(self, order: Order) -> None: ...
    def insert_first(self, order: Order, created: AuditEvent, now: datetime) -> bool:
        """Insert the order and its audit row; False (nothing written) when a unique index already
        holds a conflicting row: the caller then reads the winner."""
        ...

    def save(self, before: Order, after: Order) -> Order | None:
        """Persist what changed from `before` if the row is still at `before.version`; else None."""
        ...


class Audit(Protocol):
    def record(self, event: AuditEvent, now: datetime) -> None: ...


class MembershipReads(Protocol):
    def get(self, user_id: str) -> Membership | None: ...


class Memberships(MembershipReads, Protocol):
    def extend(self, user_id: str, days: int, now: datetime) -> datetime: ...
    def shorten(self, user_id: str, days: int, now: datetime) -> None: ...


class Grants(Protocol):
    def record(
        self, order: Order, state: GrantState, now: datetime, *, article_id: str | None, days: int
    ) -> None: ...
    def revoke(self, order_id: str, now: datetime) -> Grant | None:
        """Mark the order's live grant REVOKED; returns it as it was, or None."""
        ...


class RefundReads(Protocol):
    def get(self, out_refund_no: str) -> Refund | None: ...
    def committed_amount(self, order_id: str) -> int: ...


class Refunds(RefundReads, Protocol):
    def insert(self, refund: Refund, due_at: datetime) -> None:
        """`due_at`: when the refund job should submit it if nobody has by then."""
        ...

    def save(self, before: Refund, after: Refund) -> Refund | None:
        """Persist what changed from `before` if the row is still at `before.version`; else None."""
        ...

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
    def decide(self, order_id: str, now: datetime, status: LedgerStatus, error: str) -> bool:
        """Settle a PENDING row whoever holds its lease (the business answered); False if not PENDING."""
        ...

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


class NotificationReads(Protocol):
    def get(self, notification_id: str) -> StoredNotification | None: ...


class Notifications(NotificationReads, Protocol):
    """Raw provider notifications, stored (unique on id) in the transaction that applies them."""

    def insert(
        self, notification_id: str, event_type: str, headers: Mapping[str, str], body: str, now: datetime
    ) -> bool:
        """Insert first: False when the id is already there (the transaction stays usable)."""
        ...

    def finish(
        self, notification_id: str, status: NotificationStatus, outcome: str, now: datetime
    ) -> None: ...
    def record_attempt(self, notification_id: str, now: datetime) -> None: ...
    def claim(self, row: StoredNotification, now: datetime) -> bool: ...
    def due(self, cutoff: datetime, limit: int, max_attempts: int) -> list[StoredNotification]: ...


class BillSource(Protocol):
    """server.wxpay.bills.WeChatBills fits: None = WeChat has no statement for the day."""

    def trade_bill(self, day: date) -> TradeBill | None: ...
    def fund_flow_bill(self, day: date) -> FundBill | None: ...


class ReconReads(Protocol):
    def summary(self, day: date) -> RunSummary | None: ...
    def last_finished_day(self) -> date | None: ...
    def stored_sha1(self, day: date, kind: str) -> str | None: ...
    def line_keys(self, day: date) -> set[str]: ...
    def exceptions(
        self, day: date | None, status: ExceptionStatus | None = None, limit: int = 1000
    ) -> list[ReconException]: ...
    def get_exception(self, exception_id: int) -> ReconException | None: ...
    def open_counts(self) -> dict[ExceptionKind, int]: ...
    def local_payments(
        self, out_trade_nos: Sequence[str], transaction_ids: Sequence[str], window: Window
    ) -> list[LocalPayment]: ...
    def local_refunds(
        self, out_refund_nos: Sequence[str], refund_ids: Sequence[str], window: Window
    ) -> list[LocalRefund]: ...
    def order_id_of(self, out_trade_no: str) -> str | None: ...


class ReconStore(ReconReads, Protocol):
    def claim(self, day: date, token: str, now: datetime, stale_after: timedelta) -> Claim | None: ...
    def release(self, day: date, claim: Claim, error: str, *, keep_as: str | None = None) -> None: ...
    def finish(self, day: date, summary: RunSummary, now: datetime) -> None: ...
    def save_file(self, day: date, kind: str, content: bytes, sha1: str, now: datetime) -> None: ...
    def replace_lines(self, day: date, rows: Sequence[BillRow]) -> None: ...
    def record(
        self, day: date, found: Sequence[tuple[Difference, ExceptionStatus]], now: datetime
    ) -> list[Difference]: ...
    def resolve(self, exception: ReconException, reason: str, actor: str, now: datetime) -> bool: ...


class EventLogReads(Protocol):
    """The order event feed's log: gap-free positions in commit order (server.adapters.event_log)."""

    def head(self) -> int: ...
    def read_after(self, after: int, upto: int, chosen: FeedFilter, limit: int) -> list[StoredEvent]: ...
    def count_purgeable(self, cutoff: datetime, keep_after: int) -> int: ...


class EventLog(EventLogReads, Protocol):
    def append(self, entries: Sequence[FeedEntry]) -> int:
        """Append in order, in the caller's transaction; returns the last position given."""
        ...

    def purge(self, cutoff: datetime, keep_after: int, limit: int) -> int: ...


class SubscriberReads(Protocol):
    def get(self, name: str) -> Subscriber | None: ...
    def all(self) -> list[Subscriber]: ...
    def lowest_ack(self) -> int | None: ...


class Subscribers(SubscriberReads, Protocol):
    def register(self, name: str, now: datetime) -> Subscriber: ...
    def ack(self, name: str, position: int, now: datetime) -> Subscriber | None: ...
    def seen(self, name: str, now: datetime) -> None: ...


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
    def record(self, *events: Event) -> None: ...


UnitOfWorkFactory = Callable[[], AbstractContextManager[UnitOfWork]]
ReadFactory = Callable[[], AbstractContextManager[ReadUnitOfWork]]


class DecisionAnnouncer(Protocol):
    """Tells whoever waits on an order that its fulfilment was decided (after the commit)."""

    def publish(self, order_id: str) -> None: ...


class FeedAnnouncer(Protocol):
    """Tells this process's event-feed Watch streams that the log grew (after the commit)."""

    def publish(self, position: int) -> None: ...


class Fulfiller(Protocol):
    """Fulfil one paid order now (its transactions publish their own events)."""

    def fulfil(self, order_id: str) -> None: ...


class HasOutcome(Protocol):
    @property
    def outcome(self) -> ApplyOutcome: ...


class TransactionApplier(Protocol):
    """PaymentService as the notification path needs it: apply inside the caller's transaction."""

    def apply_in(
        self, uow: UnitOfWork, report: TransactionReport, *, source: str, account: str | None = None
    ) -> HasOutcome: ...


class RefundApplier(Protocol):
    def apply_in(
        self, uow: UnitOfWork, report: RefundReport, *, source: str, account: str | None = None
    ) -> HasOutcome: ...


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
    def identity(self, account: str) -> MerchantIdentity:
        """The merchant of the account an order is stored under (issue 18)."""
        ...

    def for_account(self, account: str) -> PaymentGateway:
        """That account's gateway: every call about an order goes out under the order's account."""
        ...


# Verifies and decrypts a signed notification (headers, raw body, now as unix seconds), or raises
# a server.domain.notification.NotificationRejected: the provider adapter supplies it.
NotificationParser = Callable[[Mapping[str, str], bytes, float], Notification]


# --- the sibling services, as the jobs and the operator's use cases need them ----------------------
class OrderCloser(Protocol):
    """OrderService: close an overdue order (at WeChat first)."""

    def close_order(self, order_id: str, caller: Caller, expected_version: int | None = None) -> object: ...


class PaymentSyncer(Protocol):
    """PaymentService: ask WeChat about one payment and repair local state (the sync job, reconciliation)."""

    def sync_payment(self, order_id: str, caller: Caller) -> Order: ...
    def schedule_next_sync(self, order_id: str) -> None: ...


class Refunder(Protocol):
    """RefundService: record and send a refund, or ask WeChat about one (poll job, recon, operator)."""

    def refund_order(
        self, order_id: str, out_refund_no: str, amount: int, reason: str, caller: Caller
    ) -> Refund: ...
    def sync_refund(self, out_refund_no: str, caller: Caller) -> Refund: ...


class AbnormalRefundResolver(Protocol):
    """RefundService: an ABNORMAL refund's money sent another way (WeChat's apply-abnormal-refund)."""

    def resolve_abnormal(self, command: ResolveAbnormal, caller: Caller) -> Refund: ...


class ReconResolver(Protocol):
    """ReconciliationService: a person closes an open exception with a reason (audited)."""

    def resolve(self, exception_id: int, reason: str, caller: Caller) -> ReconException: ...


class ReplayReceipt(Protocol):
    @property
    def outcome(self) -> str: ...
    @property
    def out_trade_no(self) -> str: ...


class NotificationReplayer(Protocol):
    """NotificationService: run stored notifications through the verify-and-apply path again."""

    def reprocess_pending(self, older_than_s: float, limit: int) -> int: ...
    def replay(self, notification_id: str) -> ReplayReceipt: ...


class FulfilmentRunner(Protocol):
    """FulfilmentWorker as the fulfilment job drives it."""

    def run_due(self, limit: int = 50) -> Batch: ...
    def oldest_due(self) -> datetime | None: ...


class DayReconciler(Protocol):
    """ReconciliationService as the daily job drives it."""

    def run_day(self, day: date) -> DayReport: ...
    def report(self, day: date) -> DayReport: ...
    def observe(self) -> None: ...


class Task(Protocol):
    """A periodic job the runner (server.jobs.scheduler) runs."""

    @property
    def name(self) -> str: ...
    def run_once(self) -> JobResult: ...
    def oldest_due(self) -> datetime | None: ...
