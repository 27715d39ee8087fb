"""Reconciling a Beijing day against WeChat Pay's bills: the use case behind the job, the CLI and the
admin API (issue 12).

A run claims the day, downloads the trade and fund-flow bills (no transaction open), stores the files
and their lines, matches them against local orders and refunds (`server.domain.reconciliation`),
repairs each repairable `MISSING_LOCAL` through the payment query path, and stores the differences as
exceptions. Running a day again changes nothing: exceptions are unique per day and key, a repaired one
stays `REPAIRED`, a resolved one stays `RESOLVED`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta

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
from server.domain.events import ReconExceptionOpened, ReconExceptionResolved
from server.domain.recon_records import BillRow, FundBill, LocalPayment, LocalRefund, RowKind, TradeBill
from server.domain.reconciliation import (
    DAY_CUT_TOLERANCE,
    Difference,
    ExceptionKind,
    ExceptionStatus,
    Outcome,
    Window,
    check_fund_flow,
    reconcile,
)
from server.service.context import Caller
from server.service.errors import TransientError
from server.service.ports import (
    BillSource,
    PaymentSyncer,
    ReadFactory,
    Refunder,
    UnitOfWork,
    UnitOfWorkFactory,
)
from server.service.recon_ports import DayReport, DayTotals, ReconException, RunSummary
from server.service.shapes import AuditEvent

log = structlog.get_logger("orderpay.recon")

STALE_CLAIM = timedelta(minutes=15)  # a run that has not finished by then died with its process
TRADE, FUND = "TRADE", "FUND"


class BillNotReadyError(TransientError):
    """WeChat is still generating the day's bill (`STATEMENT_CREATING`): try again later."""


Observer = Callable[[dict[ExceptionKind, int], date | None], None]


def _no_observer(open_counts: dict[ExceptionKind, int], last_day: date | None) -> None:
    del open_counts, last_day


RECON = Caller("job:recon")


class ReconciliationService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read: ReadFactory,
        clock: Clock,
        bills: BillSource,
        payments: PaymentSyncer | None,
        refunds: Refunder | None = None,
        *,
        tolerance: timedelta = DAY_CUT_TOLERANCE,
        observer: Observer = _no_observer,
        accounts: frozenset[str] | None = None,
    ) -> None:
        """`accounts`: the merchant accounts `bills` covers (issue 18); orders of other accounts are
        not expected in its bill. None: every order."""
        self._accounts = accounts
        self._uow = uow
        self._read = read
        self._clock = clock
        self._bills = bills
        self._payments = payments
        self._refunds = refunds
        self._tolerance = tolerance
        self._observer = observer

    # --- running a day ----------------------------------------------------------------------------

    def run_day(self, day: date, caller: Caller = RECON) -> DayReport:
        token = secrets.token_hex(16)
        with self._uow() as uow:
            claim = uow.recon.claim(day, token, self._clock(), STALE_CLAIM)
        if claim is None:
            raise InvalidStateTransitionError(
                f"{day} is being reconciled by another process", metadata={"bill_date": day.isoformat()}
            )
        try:
            self._run_claimed(day, caller)
        except BaseException as exc:
            with self._uow() as uow:
                uow.recon.release(day, claim, str(exc))
            raise
        report = self.report(day)
        self.observe()
        return report

    def _run_claimed(self, day: date, caller: Caller) -> None:
        trade, fund = self._download(day)  # network, no transaction open
        now = self._clock()
        with self._uow() as uow:
            self._store_bill(uow, day, trade, fund, now)
        rows = trade.rows if trade is not None else []
        window = Window.of(day, self._tolerance, self._accounts)
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
        with self._uow() as uow:
            created = uow.recon.record(day, found, now)
            uow.recon.finish(day, summary, now)
            for new in created:
                uow.record(ReconExceptionOpened(day, new.kind.value, new.out_trade_no, new.out_refund_no))
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

    def _store_bill(
        self, uow: UnitOfWork, day: date, trade: TradeBill | None, fund: FundBill | None, now: datetime
    ) -> None:
        if trade is not None and uow.recon.stored_sha1(day, TRADE) != trade.sha1:
            uow.recon.save_file(day, TRADE, trade.content, trade.sha1, now)
            uow.recon.replace_lines(day, trade.rows)
        if fund is not None and uow.recon.stored_sha1(day, FUND) != fund.sha1:
            uow.recon.save_file(day, FUND, fund.content, fund.sha1, now)

    def _match(
        self, day: date, rows: list[BillRow], window: Window, caller: Caller
    ) -> tuple[Outcome, list[tuple[Difference, ExceptionStatus]]]:
        payments, refunds, earlier = self._locals(day, rows, window)
        outcome = reconcile(rows, payments, refunds, window, earlier)
        self._settle_refunds(outcome.settled_remotely, caller)
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

    def _settle_refunds(self, out_refund_nos: list[str], caller: Caller) -> None:
        """The bill shows these refunds settled while they are PROCESSING here: query them now (the same
        path as the refund poller), instead of waiting for the poller's next turn."""
        if self._refunds is None:
            return
        for out_refund_no in out_refund_nos:
            try:
                self._refunds.sync_refund(out_refund_no, caller)
            except DomainError as error:
                log.warning("recon.refund_sync_failed", out_refund_no=out_refund_no, error=error.message)

    def _locals(
        self, day: date, rows: list[BillRow], window: Window
    ) -> tuple[list[LocalPayment], list[LocalRefund], set[str]]:
        pay_rows = [r for r in rows if r.kind is RowKind.PAYMENT]
        refund_rows = [r for r in rows if r.kind is RowKind.REFUND]
        with self._read() as uow:
            payments = uow.recon.local_payments(
                [r.out_trade_no for r in pay_rows], [r.transaction_id for r in pay_rows], window
            )
            refunds = uow.recon.local_refunds(
                [r.out_refund_no for r in refund_rows], [r.refund_id for r in refund_rows], window
            )
            earlier = uow.recon.line_keys(day - timedelta(days=1))
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
        with self._read() as uow:
            summary = uow.recon.summary(day)
            exceptions = uow.recon.exceptions(day)
        if summary is None:
            summary = RunSummary("NOT_RUN", None, None, 0, 0, 0)
        return DayReport(day, summary, exceptions)

    def open_exceptions(self, day: date | None = None, limit: int = 100) -> list[ReconException]:
        with self._read() as uow:
            return uow.recon.exceptions(day, ExceptionStatus.OPEN, limit=limit)

    def resolve(self, exception_id: int, reason: str, caller: Caller) -> ReconException:
        """A person closes an exception with a reason; the change is written to the audit trail."""
        if not reason.strip():
            raise InvalidArgumentError([FieldViolation("reason", "say why the exception is resolved")])
        now = self._clock()
        with self._uow() as uow:
            exception = uow.recon.get_exception(exception_id)
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
            if not uow.recon.resolve(exception, reason, caller.actor, now):
                raise TransientError("the exception changed while resolving it; try again")
            uow.record(ReconExceptionResolved(exception.id))
            order_id = uow.recon.order_id_of(exception.out_trade_no) if exception.out_trade_no else None
            uow.audit.record(
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
        self.observe()
        return replace(
            exception, status=ExceptionStatus.RESOLVED, resolution=reason, resolved_by=caller.actor
        )

    def observe(self) -> None:
        """Publish the open exceptions and the last reconciled day (the job calls it now and then, so
        every process's gauges follow runs made elsewhere, by the CLI or another process)."""
        try:
            with self._read() as uow:
                counts, last_day = uow.recon.open_counts(), uow.recon.last_finished_day()
            self._observer(counts, last_day)
        except Exception:  # metrics must never fail a run
            log.exception("recon.observe_failed")
