"""The reconciliation use case's shapes (what it returns) and ports (what it needs from adapters)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from server.domain.recon_records import BillRow, FundBill, LocalPayment, LocalRefund, TradeBill
from server.domain.reconciliation import Difference, ExceptionKind, ExceptionStatus, Window
from server.service.context import Caller

# --- shapes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    token: str
    previous_status: str | None  # None: the day had never finished before this run


@dataclass(frozen=True)
class DayTotals:
    payments_fen: int = 0
    refunds_fen: int = 0
    fees_fen: int = 0
    fund_income_fen: int | None = None
    fund_expense_fen: int | None = None


@dataclass(frozen=True)
class RunSummary:
    status: str  # DONE | EMPTY (WeChat had no statement for the day) | RUNNING | BILL_MALFORMED
    trade_sha1: str | None
    fund_sha1: str | None
    bill_rows: int
    matched: int
    deferred: int
    totals: DayTotals = field(default_factory=DayTotals)
    finished_at: datetime | None = None
    error: str = ""  # why the last run did not finish (BILL_MALFORMED: the line and column)


@dataclass(frozen=True)
class ReconException:
    id: int
    bill_date: date
    kind: ExceptionKind
    out_trade_no: str
    out_refund_no: str
    local_fen: int
    remote_fen: int
    status: ExceptionStatus
    detail: str
    resolution: str
    resolved_by: str
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DayReport:
    bill_date: date
    summary: RunSummary
    exceptions: list[ReconException]

    @property
    def repaired(self) -> int:
        return sum(1 for e in self.exceptions if e.status is ExceptionStatus.REPAIRED)

    @property
    def open(self) -> list[ReconException]:
        return [e for e in self.exceptions if e.status is ExceptionStatus.OPEN]

    @property
    def clean(self) -> bool:
        """Nothing left but matched rows and exceptions already repaired or resolved."""
        return self.summary.status in {"DONE", "EMPTY"} and not self.open


# --- ports ------------------------------------------------------------------------------------------


class BillSource(Protocol):
    """server.wxpay.bills.WeChatBills fits: None = WeChat has no statement for the day."""

    def trade_bill(self, day: date) -> TradeBill | None: ...
    def fund_flow_bill(self, day: date) -> FundBill | None: ...


class ReconStore(Protocol):
    def claim(self, day: date, token: str, now: datetime, stale_after: timedelta) -> Claim | None: ...
    def release(self, day: date, claim: Claim, error: str, *, keep_as: str | None = None) -> None: ...
    def finish(self, day: date, summary: RunSummary, now: datetime) -> None: ...
    def summary(self, day: date) -> RunSummary | None: ...
    def last_finished_day(self) -> date | None: ...
    def stored_sha1(self, day: date, kind: str) -> str | None: ...
    def save_file(self, day: date, kind: str, content: bytes, sha1: str, now: datetime) -> None: ...
    def replace_lines(self, day: date, rows: Sequence[BillRow]) -> None: ...
    def line_keys(self, day: date) -> set[str]: ...
    def record(
        self, day: date, found: Sequence[tuple[Difference, ExceptionStatus]], now: datetime
    ) -> list[Difference]: ...
    def exceptions(
        self, day: date | None, status: ExceptionStatus | None = None, limit: int = 1000
    ) -> list[ReconException]: ...
    def get_exception(self, exception_id: int) -> ReconException | None: ...
    def resolve(self, exception: ReconException, reason: str, actor: str, now: datetime) -> bool: ...
    def open_counts(self) -> dict[ExceptionKind, int]: ...
    def local_payments(
        self, out_trade_nos: Sequence[str], transaction_ids: Sequence[str], window: Window
    ) -> list[LocalPayment]: ...
    def local_refunds(
        self, out_refund_nos: Sequence[str], refund_ids: Sequence[str], window: Window
    ) -> list[LocalRefund]: ...
    def order_id_of(self, out_trade_no: str) -> str | None: ...


class RefundSyncer(Protocol):
    """RefundService fits: queries WeChat for one refund and settles it locally."""

    def sync_refund(self, out_refund_no: str, caller: Caller) -> Any: ...


class PaymentRepairer(Protocol):
    """PaymentService fits: queries WeChat and applies a payment through the idempotent path."""

    def sync_payment(self, order_id: str, caller: Caller) -> Any: ...
