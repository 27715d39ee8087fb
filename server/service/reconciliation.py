"""Reconciling a Beijing day against WeChat Pay's bills: the use case behind the job, the CLI and the
admin API (issue 12).

Each merchant account's bills are reconciled on their own (issue 18): a run claims the (day, account),
downloads that account's trade and fund-flow bills (no transaction open), stores the files and their
lines, matches them against that account's orders and refunds only (`server.domain.reconciliation`),
repairs each repairable `MISSING_LOCAL` through the payment query path, and stores the differences as
exceptions carrying the account. One account's bill failing to download or parse leaves the others'
runs alone. Running a day again changes nothing: exceptions are unique per day, account and key, a
repaired one stays `REPAIRED`, a resolved one stays `RESOLVED`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
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
    ProviderUnavailableError,
    ReconExceptionNotFoundError,
)
from server.domain.events import ReconExceptionOpened, ReconExceptionResolved
from server.domain.operations import require_reason
from server.domain.recon_records import FundBill, TradeBill
from server.domain.reconciliation import (
    BILL_MALFORMED,
    DAY_CUT_TOLERANCE,
    ExceptionKind,
    ExceptionStatus,
    Window,
    check_fund_flow,
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
from server.service.recon_matching import BillMatcher
from server.service.recon_ports import DayReport, DayTotals, ReconException, RunSummary, combined
from server.service.shapes import AuditEvent

log = structlog.get_logger("orderpay.recon")

STALE_CLAIM = timedelta(minutes=15)  # a run that has not finished by then died with its process
TRADE, FUND = "TRADE", "FUND"


class BillNotReadyError(TransientError):
    """WeChat is still generating the day's bill (`STATEMENT_CREATING`): try again later."""


# Open exceptions per (account, kind), and each account's last reconciled day.
Observer = Callable[[Mapping[str, Mapping[ExceptionKind, int]], Mapping[str, date]], None]


def _no_observer(
    open_counts: Mapping[str, Mapping[ExceptionKind, int]], last_days: Mapping[str, date]
) -> None:
    del open_counts, last_days


RECON = Caller("job:recon")


class ReconciliationService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read: ReadFactory,
        clock: Clock,
        bills: Mapping[str, BillSource],
        payments: PaymentSyncer | None,
        refunds: Refunder | None = None,
        *,
        tolerance: timedelta = DAY_CUT_TOLERANCE,
        observer: Observer = _no_observer,
    ) -> None:
        """`bills`: each merchant account's bill source, by account name (configuration's names, never
        the wire's). With several, each bill is matched against its own account's orders only."""
        if not bills:
            raise ValueError("reconciliation needs at least one account's bills")
        self._bills = dict(bills)
        self._uow = uow
        self._read = read
        self._clock = clock
        self._matcher = BillMatcher(read, payments, refunds)
        self._tolerance = tolerance
        self._observer = observer

    @property
    def accounts(self) -> tuple[str, ...]:
        """The accounts whose bills are reconciled, in configuration order."""
        return tuple(self._bills)

    def _check_account(self, account: str) -> None:
        if account not in self._bills:
            known = ", ".join(self._bills)
            raise InvalidArgumentError([FieldViolation("account", f"no account {account!r} ({known})")])

    # --- running a day ----------------------------------------------------------------------------

    def run_day(self, day: date, caller: Caller = RECON, *, account: str | None = None) -> DayReport:
        """One account's day, or (`account` None) every account's, each on its own: an account whose
        bill cannot be had or read leaves the others reconciled, and its error is raised after them."""
        if account is not None:
            self._check_account(account)
            return self._run_account(day, account, caller)
        failed: list[BaseException] = []
        for name in self._bills:
            try:
                self._run_account(day, name, caller)
            except (DomainError, TransientError) as exc:
                log.warning("recon.account_failed", bill_date=day.isoformat(), account=name, error=str(exc))
                failed.append(exc)
        if failed:
            raise failed[0]
        return self.report(day)

    def _run_account(self, day: date, account: str, caller: Caller) -> DayReport:
        token = secrets.token_hex(16)
        with self._uow() as uow:
            claim = uow.recon.claim(day, account, token, self._clock(), STALE_CLAIM)
        if claim is None:
            raise InvalidStateTransitionError(
                f"{day} of account {account} is being reconciled by another process",
                metadata={"bill_date": day.isoformat(), "account": account},
            )
        try:
            self._run_claimed(day, account, caller)
        except BaseException as exc:
            malformed = isinstance(exc, ProviderUnavailableError) and (
                exc.metadata.get("provider_code") == BILL_MALFORMED
            )
            with self._uow() as uow:  # a malformed bill is an outcome of its own, kept where it is shown
                keep_as = BILL_MALFORMED if malformed else None
                uow.recon.release(day, account, claim, str(exc), keep_as=keep_as)
            if isinstance(exc, DomainError):
                exc.metadata.setdefault("account", account)
            raise
        report = self.report(day, account)
        self.observe()
        return report

    def _window(self, day: date, account: str) -> Window:
        """With one account every order is its; with several, only the account's own orders."""
        scope = None if len(self._bills) == 1 else frozenset({account})
        return Window.of(day, self._tolerance, scope)

    def _run_claimed(self, day: date, account: str, caller: Caller) -> None:
        trade, fund = self._download(day, account)  # network, no transaction open
        now = self._clock()
        with self._uow() as uow:
            self._store_bill(uow, day, account, trade, fund, now)
        rows = trade.rows if trade is not None else []
        window = self._window(day, account)
        outcome, found = self._matcher.match(day, account, rows, window, caller)
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
            created = uow.recon.record(day, account, found, now)
            uow.recon.finish(day, account, summary, now)
            for new in created:
                uow.record(ReconExceptionOpened(day, new.kind.value, new.out_trade_no, new.out_refund_no))
        for difference in created:
            if difference.kind.critical:
                log.error(
                    "recon.critical",
                    kind=difference.kind.value,
                    bill_date=day.isoformat(),
                    account=account,
                    out_trade_no=difference.out_trade_no,
                    out_refund_no=difference.out_refund_no,
                    local_fen=difference.local_fen,
                )
        log.info(
            "recon.day",
            bill_date=day.isoformat(),
            account=account,
            rows=len(rows),
            matched=outcome.matched,
            exceptions=len(found),
            deferred=len(outcome.deferred),
        )

    def _download(self, day: date, account: str) -> tuple[TradeBill | None, FundBill | None]:
        bills = self._bills[account]
        try:
            return bills.trade_bill(day), bills.fund_flow_bill(day)
        except ProviderRejectedError as error:
            if error.metadata.get("provider_code") == "STATEMENT_CREATING":
                raise BillNotReadyError(
                    f"WeChat Pay is still generating the bill of {day} ({account})",
                    metadata={"bill_date": day.isoformat(), "account": account},
                ) from error
            raise

    def _store_bill(
        self,
        uow: UnitOfWork,
        day: date,
        account: str,
        trade: TradeBill | None,
        fund: FundBill | None,
        now: datetime,
    ) -> None:
        if trade is not None and uow.recon.stored_sha1(day, account, TRADE) != trade.sha1:
            uow.recon.save_file(day, account, TRADE, trade.content, trade.sha1, now)
            uow.recon.replace_lines(day, account, trade.rows)
        if fund is not None and uow.recon.stored_sha1(day, account, FUND) != fund.sha1:
            uow.recon.save_file(day, account, FUND, fund.content, fund.sha1, now)

    # --- reading and resolving --------------------------------------------------------------------

    def report(self, day: date, account: str | None = None) -> DayReport:
        """One account's day, or every account's together (each in `parts`)."""
        if account is not None:
            self._check_account(account)
        names = [account] if account is not None else list(self._bills)
        parts = []
        with self._read() as uow:
            for name in names:
                summary = uow.recon.summary(day, name) or RunSummary("NOT_RUN", None, None, 0, 0, 0)
                parts.append(DayReport(day, summary, uow.recon.exceptions(day, account=name), name))
        return combined(day, parts)

    def open_exceptions(
        self, day: date | None = None, limit: int = 100, account: str | None = None
    ) -> list[ReconException]:
        with self._read() as uow:
            return uow.recon.exceptions(day, ExceptionStatus.OPEN, limit=limit, account=account)

    def resolve(self, exception_id: int, reason: str, caller: Caller) -> ReconException:
        """A person closes an exception with a reason; the change is written to the audit trail."""
        if not reason.strip():
            raise InvalidArgumentError([FieldViolation("reason", "say why the exception is resolved")])
        reason = require_reason(reason)  # the operator-reason rule every other action has (printable)
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
            order_id = (
                uow.recon.order_id_of(exception.out_trade_no, exception.account)
                if exception.out_trade_no
                else None
            )
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
        """Publish each account's open exceptions and last reconciled day (the job calls it now and then,
        so every process's gauges follow runs made elsewhere, by the CLI or another process). Only the
        configured accounts are labelled: label values come from configuration, never from data."""
        try:
            with self._read() as uow:
                counts, last_days = uow.recon.open_counts(), uow.recon.last_finished_days()
            by_account: dict[str, dict[ExceptionKind, int]] = {name: {} for name in self._bills}
            for (name, kind), count in counts.items():
                if name in by_account:
                    by_account[name][kind] = count
            self._observer(by_account, {n: d for n, d in last_days.items() if n in by_account})
        except Exception:  # metrics must never fail a run
            log.exception("recon.observe_failed")
