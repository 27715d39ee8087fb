"""The sibling services, as the jobs and the operator's use cases need them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from server.domain.order import Order
from server.domain.provider import ResolveAbnormal
from server.domain.refund import Refund
from server.service.context import Caller
from server.service.recon_ports import DayReport, ReconException
from server.service.shapes import (
    Batch,
    JobResult,
)


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

    @property
    def accounts(self) -> tuple[str, ...]: ...
    def run_day(self, day: date, *, account: str | None = None) -> DayReport: ...
    def report(self, day: date, account: str | None = None) -> DayReport: ...
    def observe(self) -> None: ...


class Task(Protocol):
    """A periodic job the runner (server.jobs.scheduler) runs."""

    @property
    def name(self) -> str: ...
    def run_once(self) -> JobResult: ...
    def oldest_due(self) -> datetime | None: ...
