"""Reconciling a Beijing day against WeChat Pay's bills: the use case behind the job, the CLI and the
admin API (SPEC §11, issue 12).

A run claims the day, downloads the trade and fund-flow bills (no transaction open), stores the files
and their lines, matches them against local orders and refunds (`server.domain.reconciliation`),
repairs each repairable `MISSING_LOCAL` through the payment query path, and stores the differences as
exceptions. Running a day again changes nothing: exceptions are unique per day and key, a repaired one
stays `REPAIRED`, a resolved one stays `RESOLVED`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import structlog

from server.domain.clock import Clock
from server.domain.errors import (
    DomainError,
    FieldViolation,
    InvalidArgumentError,
    InvalidStateTransitionError,
    ProviderRejectedError,
    ReconExceptionNotFoundError,
)
from server.domain.reconciliation import (
    DAY_CUT_TOLERANCE,
    BillRow,
    Difference,
    ExceptionKind,
    ExceptionStatus,
    FundBill,
    LocalPayment,
    LocalRefund,
    Outcome,
    RowKind,
    TradeBill,
    Window,
    check_fund_flow,
    reconcile,
)
from server.service.context import Caller
from server.service.errors import TransientError
from server.service.ports import AuditEvent, UnitOfWork

log = structlog.get_logger("orderpay.recon")

STALE_CLAIM = timedelta(minutes=15)  # a run that has not finished by then died with its process
TRADE, FUND = "TRADE", "FUND"


class BillNotReadyError(TransientError):
    """WeChat is still generating the day's bill (`STATEMENT_CREATING`): try again later."""


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
    status: str  # DONE | EMPTY (WeChat had no statement for the day) | RUNNING
    trade_sha1: str | None
    fund_sha1: str | None
    bill_rows: int
    matched: int
    deferred: int
    totals: DayTotals = field(default_factory=DayTotals)
    finished_at: datetime | None = None


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
    def release(self, day: date, claim: Claim, error: str) -> None: ...
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


class PaymentRepairer(Protocol):
    """PaymentService fits: queries WeChat and applies a payment through the idempotent path."""

    def sync_payment(self, order_id: str, caller: Caller) -> Any: ...


Transaction = Callable[[], AbstractContextManager[UnitOfWork]]
Observer = Callable[[dict[ExceptionKind, int], date | None], None]


def _no_observer(open_counts: dict[ExceptionKind, int], last_day: date | None) -> None:
    del open_counts, last_day


RECON = Caller("job:recon")


class ReconciliationService:
    def __init__(
        self,
        uow: Transaction,
        read: Transaction,
        clock: Clock,
        bills: BillSource,
        store: ReconStore,
        payments: PaymentRepairer | None,
        *,
        tolerance: timedelta = DAY_CUT_TOLERANCE,
        observer: Observer = _no_observer,
    ) -> None:
        self._uow = uow
        self._read = read
        self._clock = clock
        self._bills = bills
        self._store = store
        self._payments = payments
        self._tolerance = tolerance
        self._observer = observer

    # --- running a day ----------------------------------------------------------------------------

    def run_day(self, day: date, caller: Caller = RECON) -> DayReport:
        token = secrets.token_hex(16)
        with self._uow():
            claim = self._store.claim(day, token, self._clock(), STALE_CLAIM)
        if claim is None:
            raise InvalidStateTransitionError(
                f"{day} is being reconciled by another process", metadata={"bill_date": day.isoformat()}
            )
        try:
            self._run_claimed(day, caller)
        except BaseException as exc:
            with self._uow():
                self._store.release(day, claim, str(exc))
            raise
        report = self.report(day)
        self._observe()
        return report

    def _run_claimed(self, day: date, caller: Caller) -> None:
        trade, fund = self._download(day)  # network, no transaction open
        now = self._clock()
        with self._uow():
            self._store_bill(day, trade, fund, now)
        rows = trade.rows if trade is not None else []
        window = Window.of(day, self._tolerance)
        outcome, found = self._match(day, rows, window, caller)
        fund_difference = check_fund_flow(outcome, fund.flow if fund is not None else None)
        if fund_difference is not None:
            found.append((fund_difference, ExceptionStatus.OPEN))
        summary = RunSummary(
            status="DONE" if trade is not None else "EMPTY",
            trade_sha1=trade.sha1 if trade is not None else None,
            fund_sha1=fund.sha1 if fund is not None else None,
            bill_rows=len(rows),
            matched=outcome.matched,
            deferred=len(outcome.deferred),
            totals=DayTotals(
                outcome.payments_fen,
                outcome.live_refunds_fen,
                outcome.fees_fen,
                fund.flow.income_fen if fund is not None else None,
                fund.flow.expense_fen if fund is not None else None,
            ),
        )
        now = self._clock()
        with self._uow():
            created = self._store.record(day, found, now)
            self._store.finish(day, summary, now)
        for difference in created:
            if difference.kind.critical:
                log.error(
                    "recon.critical",
                    kind=difference.kind.value,
                    bill_date=day.isoformat(),
                    out_trade_no=difference.out_trade_no,
                    out_refund_no=difference.out_refund_no,
                    local_fen=difference.local_fen,
                )
        log.info(
            "recon.day",
            bill_date=day.isoformat(),
            rows=len(rows),
            matched=outcome.matched,
            exceptions=len(found),
            deferred=len(outcome.deferred),
        )

    def _download(self, day: date) -> tuple[TradeBill | None, FundBill | None]:
        try:
            return self._bills.trade_bill(day), self._bills.fund_flow_bill(day)
        except ProviderRejectedError as error:
            if error.metadata.get("provider_code") == "STATEMENT_CREATING":
                raise BillNotReadyError(
                    f"WeChat Pay is still generating the bill of {day}",
                    metadata={"bill_date": day.isoformat()},
                ) from error
            raise

    def _store_bill(self, day: date, trade: TradeBill | None, fund: FundBill | None, now: datetime) -> None:
        if trade is not None and self._store.stored_sha1(day, TRADE) != trade.sha1:
            self._store.save_file(day, TRADE, trade.content, trade.sha1, now)
            self._store.replace_lines(day, trade.rows)
        if fund is not None and self._store.stored_sha1(day, FUND) != fund.sha1:
            self._store.save_file(day, FUND, fund.content, fund.sha1, now)

    def _match(
        self, day: date, rows: list[BillRow], window: Window, caller: Caller
    ) -> tuple[Outcome, list[tuple[Difference, ExceptionStatus]]]:
        payments, refunds, earlier = self._locals(day, rows, window)
        outcome = reconcile(rows, payments, refunds, window, earlier)
        repairable = [d for d in outcome.differences if d.repairable]
        if not repairable or self._payments is None:
            return outcome, [(d, ExceptionStatus.OPEN) for d in outcome.differences]
        self._repair(repairable, payments, caller)
        # Re-match with what the repairs wrote: a repaired row now matches (or shows its real difference).
        payments, refunds, earlier = self._locals(day, rows, window)
        rematched = reconcile(rows, payments, refunds, window, earlier)
        still = {(d.kind, d.out_trade_no) for d in rematched.differences}
        found = [(d, ExceptionStatus.OPEN) for d in rematched.differences]
        found += [(d, ExceptionStatus.REPAIRED) for d in repairable if (d.kind, d.out_trade_no) not in still]
        return rematched, found

    def _locals(
        self, day: date, rows: list[BillRow], window: Window
    ) -> tuple[list[LocalPayment], list[LocalRefund], set[str]]:
        pay_rows = [r for r in rows if r.kind is RowKind.PAYMENT]
        refund_rows = [r for r in rows if r.kind is RowKind.REFUND]
        with self._read():
            payments = self._store.local_payments(
                [r.out_trade_no for r in pay_rows], [r.transaction_id for r in pay_rows], window
            )
            refunds = self._store.local_refunds(
                [r.out_refund_no for r in refund_rows], [r.refund_id for r in refund_rows], window
            )
            earlier = self._store.line_keys(day - timedelta(days=1))
        return payments, refunds, earlier

    def _repair(self, repairable: list[Difference], payments: list[LocalPayment], caller: Caller) -> None:
        assert self._payments is not None  # noqa: S101 - checked by the caller
        order_ids = {p.out_trade_no: p.order_id for p in payments}
        for difference in repairable:
            order_id = order_ids.get(difference.out_trade_no)
            if order_id is None:
                continue
            try:
                self._payments.sync_payment(order_id, caller)
            except DomainError as error:  # stays OPEN; the next run tries again
                log.warning("recon.repair_failed", out_trade_no=difference.out_trade_no, error=error.message)

    # --- reading and resolving --------------------------------------------------------------------

    def report(self, day: date) -> DayReport:
        with self._read():
            summary = self._store.summary(day)
            exceptions = self._store.exceptions(day)
        if summary is None:
            summary = RunSummary("NOT_RUN", None, None, 0, 0, 0)
        return DayReport(day, summary, exceptions)

    def open_exceptions(self, day: date | None = None, limit: int = 100) -> list[ReconException]:
        with self._read():
            return self._store.exceptions(day, ExceptionStatus.OPEN, limit=limit)

    def resolve(self, exception_id: int, reason: str, caller: Caller) -> ReconException:
        """A person closes an exception with a reason; the change is written to the audit trail."""
        if not reason.strip():
            raise InvalidArgumentError([FieldViolation("reason", "say why the exception is resolved")])
        now = self._clock()
        with self._uow() as uow:
            exception = self._store.get_exception(exception_id)
            if exception is None:
                raise ReconExceptionNotFoundError(
                    f"no reconciliation exception {exception_id}",
                    metadata={"exception_id": str(exception_id)},
                )
            if exception.status is not ExceptionStatus.OPEN:
                raise InvalidStateTransitionError(
                    f"exception {exception_id} is already {exception.status}",
                    metadata={"from": exception.status.value, "to": ExceptionStatus.RESOLVED.value},
                )
            if not self._store.resolve(exception, reason, caller.actor, now):
                raise TransientError("the exception changed while resolving it; try again")
            order_id = self._store.order_id_of(exception.out_trade_no) if exception.out_trade_no else None
            uow.events.record(
                AuditEvent(
                    order_id=order_id or f"recon:{exception.bill_date.isoformat()}",
                    field="recon_exception",
                    from_value=f"{exception.kind.value}#{exception.id}:{exception.status.value}",
                    to_value=ExceptionStatus.RESOLVED.value,
                    cause=f"resolved: {reason}",
                    actor=caller.actor,
                    request_id=caller.request_id,
                ),
                now,
            )
        self._observe()
        return replace(
            exception, status=ExceptionStatus.RESOLVED, resolution=reason, resolved_by=caller.actor
        )

    def _observe(self) -> None:
        try:
            with self._read():
                counts, last_day = self._store.open_counts(), self._store.last_finished_day()
            self._observer(counts, last_day)
        except Exception:  # metrics must never fail a run
            log.exception("recon.observe_failed")
