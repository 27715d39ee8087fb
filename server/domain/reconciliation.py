"""Reconciliation rules (对账): a day's bill rows against local payments and refunds.

Pure matching, after Hyperswitch's engine: identifiers with ordered fallbacks (payments on
`out_trade_no` then `transaction_id`, refunds on `out_refund_no` then `refund_id`), then the fields that
must agree (amount, status). Each difference has a stable kind; nothing here does I/O.

The day cut: the bill's day is Beijing's, dated by WeChat's clock (a payment's success time, a refund's
acceptance). A payment's local `paid_at` *is* WeChat's success time, so payments never cross days; a
refund's local `created_at` is taken just before WeChat accepts it, so a refund written in the last
moments of day D may be in D+1's bill. Rules:
- a bill row is matched against the local record wherever that record's day is (a row shifted by the cut
  is matched, not reported);
- a local record of the last `tolerance` of D that D's bill lacks is *deferred* to D+1, not reported;
- D's local set therefore also holds the records of D-1's last `tolerance` that D-1's bill lacked.
  (When D-1 was never reconciled, its stored bill is empty and such a record counts as D's: a day is
  reconciled after the day before it, as the job does, for the cut to be exact.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum

from server.domain.money import yuan
from server.domain.recon_records import BillRow, FundFlow, LocalPayment, LocalRefund, RowKind

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
DAY_CUT_TOLERANCE = timedelta(minutes=5)
# A day whose bill does not parse: stored as the day's status, with where (line, column) as its error.
BILL_MALFORMED = "BILL_MALFORMED"
LIVE_REFUND_STATUSES = frozenset({"SUCCESS", "PROCESSING"})  # money left, or is leaving, the account
FINAL_REFUND_STATUSES = frozenset({"SUCCESS", "CLOSED", "ABNORMAL"})


class ExceptionKind(StrEnum):
    MISSING_LOCAL = "MISSING_LOCAL"  # WeChat took money orderpay does not know as paid
    MISSING_REMOTE = "MISSING_REMOTE"  # orderpay says paid; the bill has no such payment
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    STATUS_MISMATCH = "STATUS_MISMATCH"
    REFUND_MISSING_LOCAL = "REFUND_MISSING_LOCAL"
    REFUND_MISSING_REMOTE = "REFUND_MISSING_REMOTE"
    REFUND_AMOUNT_MISMATCH = "REFUND_AMOUNT_MISMATCH"
    FUND_FLOW_MISMATCH = "FUND_FLOW_MISMATCH"  # the fund-flow bill disagrees with the trade bill's sums

    @property
    def critical(self) -> bool:
        return self in {ExceptionKind.MISSING_REMOTE, ExceptionKind.REFUND_MISSING_REMOTE}


class ExceptionStatus(StrEnum):
    OPEN = "OPEN"
    REPAIRED = "REPAIRED"  # orderpay repaired itself (a MISSING_LOCAL payment applied from WeChat's query)
    RESOLVED = "RESOLVED"  # a person closed it, with a reason (audited)


@dataclass(frozen=True)
class Difference:
    kind: ExceptionKind
    out_trade_no: str = ""
    out_refund_no: str = ""
    local_fen: int = 0
    remote_fen: int = 0
    detail: str = ""
    repairable: bool = False  # a MISSING_LOCAL whose order exists: the payment query can repair it


@dataclass(frozen=True)
class Outcome:
    matched: int
    differences: list[Difference]
    deferred: list[str] = field(default_factory=list)  # local keys left to the next day's bill
    payments_fen: int = 0
    live_refunds_fen: int = 0
    fees_fen: int = 0  # payment fees minus the fees returned on live refunds
    # Matched refunds still PROCESSING here that the bill shows settled: worth a refund query now.
    settled_remotely: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    """The local records that day D's bill must account for (see the module note)."""

    start: datetime  # D 00:00 Beijing, minus the tolerance
    day_start: datetime
    end: datetime  # D+1 00:00 Beijing
    tolerance: timedelta
    # The merchant accounts whose bill this is (issue 18): other accounts' orders are not expected in
    # it. None: every order (one account).
    accounts: frozenset[str] | None = None

    @classmethod
    def of(
        cls, day: date, tolerance: timedelta = DAY_CUT_TOLERANCE, accounts: frozenset[str] | None = None
    ) -> Window:
        day_start = datetime.combine(day, time(0), tzinfo=BEIJING)
        return cls(day_start - tolerance, day_start, day_start + timedelta(days=1), tolerance, accounts)

    def expects(self, at: datetime | None, earlier_bill: set[str], key: str) -> bool:
        if at is None or not self.start <= at < self.end:
            return False
        return at >= self.day_start or key not in earlier_bill  # D-1's bill lacked it: it is D's

    def may_defer(self, at: datetime) -> bool:
        return at >= self.end - self.tolerance


def reconcile(
    rows: Sequence[BillRow],
    payments: Iterable[LocalPayment],
    refunds: Iterable[LocalRefund],
    window: Window,
    earlier_bill: Iterable[str] = (),
) -> Outcome:
    """Match `rows` (day D's bill) against the local records. `payments`/`refunds` hold every local record
    the rows name plus those of the window; `earlier_bill` holds the keys in D-1's stored bill."""
    by_no = {p.out_trade_no: p for p in payments}
    by_txn = {p.transaction_id: p for p in by_no.values() if p.transaction_id}
    refund_by_no = {r.out_refund_no: r for r in refunds}
    refund_by_id = {r.refund_id: r for r in refund_by_no.values() if r.refund_id}
    differences: list[Difference] = []
    seen_payments: set[str] = set()
    seen_refunds: set[str] = set()
    settled: list[str] = []
    matched = 0
    for row in rows:
        if row.kind is RowKind.PAYMENT:
            found = _payment_difference(row, by_no, by_txn, seen_payments)
        else:
            found = _refund_difference(row, refund_by_no, refund_by_id, seen_refunds)
            local = refund_by_no.get(row.out_refund_no) or refund_by_id.get(row.refund_id)
            settled_there = row.status in FINAL_REFUND_STATUSES
            if found is None and local is not None and local.status == "PROCESSING" and settled_there:
                settled.append(local.out_refund_no)
        if found is None:
            matched += 1
        else:
            differences.append(found)
    missing, deferred = _unaccounted(
        by_no.values(), refund_by_no.values(), seen_payments, seen_refunds, window, set(earlier_bill)
    )
    differences.extend(missing)
    payments_fen, refunds_fen, fees_fen = _sums(rows)
    return Outcome(matched, differences, deferred, payments_fen, refunds_fen, fees_fen, settled)


def _unaccounted(
    payments: Iterable[LocalPayment],
    refunds: Iterable[LocalRefund],
    seen_payments: set[str],
    seen_refunds: set[str],
    window: Window,
    earlier: set[str],
) -> tuple[list[Difference], list[str]]:
    """Local records of the window that no bill row named: missing at WeChat, or deferred to D+1."""
    missing: list[Difference] = []
    deferred: list[str] = []
    for payment in payments:
        if not payment.transaction_id or payment.out_trade_no in seen_payments:
            continue
        if window.expects(payment.paid_at, earlier, payment.out_trade_no):
            missing.append(_missing_remote(payment))
    for refund in refunds:
        if not refund.reached_wechat or refund.out_refund_no in seen_refunds:
            continue
        if not window.expects(refund.created_at, earlier, refund.out_refund_no):
            continue
        if window.may_defer(refund.created_at):
            deferred.append(refund.out_refund_no)
        else:
            missing.append(_refund_missing_remote(refund))
    return missing, deferred


def _payment_difference(
    row: BillRow, by_no: dict[str, LocalPayment], by_txn: dict[str, LocalPayment], seen: set[str]
) -> Difference | None:
    local = by_no.get(row.out_trade_no) or by_txn.get(row.transaction_id)
    if local is None or local.out_trade_no in seen:
        detail = "a second bill row for one payment" if local is not None else "no such order"
        return Difference(
            ExceptionKind.MISSING_LOCAL, row.out_trade_no, remote_fen=row.amount_fen, detail=detail
        )
    seen.add(local.out_trade_no)
    if local.transaction_id is None:
        return Difference(
            ExceptionKind.MISSING_LOCAL,
            local.out_trade_no,
            remote_fen=row.amount_fen,
            detail="order not known as paid",
            repairable=True,
        )
    if local.paid_fen != row.amount_fen:
        return Difference(
            ExceptionKind.AMOUNT_MISMATCH,
            local.out_trade_no,
            local_fen=local.paid_fen,
            remote_fen=row.amount_fen,
            detail="paid amount differs from the bill's 订单金额",
        )
    if local.transaction_id != row.transaction_id:
        detail = f"transaction_id {local.transaction_id} locally, {row.transaction_id} in the bill"
        return Difference(ExceptionKind.STATUS_MISMATCH, local.out_trade_no, detail=detail)
    return None


def _refund_difference(
    row: BillRow, by_no: dict[str, LocalRefund], by_id: dict[str, LocalRefund], seen: set[str]
) -> Difference | None:
    local = by_no.get(row.out_refund_no) or by_id.get(row.refund_id)
    if local is None or local.out_refund_no in seen:
        return Difference(
            ExceptionKind.REFUND_MISSING_LOCAL,
            row.out_trade_no,
            row.out_refund_no,
            remote_fen=row.amount_fen,
            detail="a second bill row for one refund" if local is not None else "no such refund",
        )
    seen.add(local.out_refund_no)
    if local.amount_fen != row.amount_fen:
        return Difference(
            ExceptionKind.REFUND_AMOUNT_MISMATCH,
            local.out_trade_no,
            local.out_refund_no,
            local_fen=local.amount_fen,
            remote_fen=row.amount_fen,
            detail="refund amount differs from the bill's 申请退款金额",
        )
    # The bill is a snapshot: PROCESSING on either side may have settled since. Two different final
    # statuses cannot both be true.
    if {local.status, row.status} <= FINAL_REFUND_STATUSES and local.status != row.status:
        return Difference(
            ExceptionKind.STATUS_MISMATCH,
            local.out_trade_no,
            local.out_refund_no,
            local_fen=local.amount_fen,
            remote_fen=row.amount_fen,
            detail=f"refund {local.status} locally, {row.status} in the bill",
        )
    return None


def _missing_remote(payment: LocalPayment) -> Difference:
    return Difference(
        ExceptionKind.MISSING_REMOTE, payment.out_trade_no, local_fen=payment.paid_fen, detail="paid locally"
    )


def _refund_missing_remote(refund: LocalRefund) -> Difference:
    return Difference(
        ExceptionKind.REFUND_MISSING_REMOTE,
        refund.out_trade_no,
        refund.out_refund_no,
        local_fen=refund.amount_fen,
        detail=f"refund {refund.status} locally",
    )


def _sums(rows: Sequence[BillRow]) -> tuple[int, int, int]:
    payments = sum(r.amount_fen for r in rows if r.kind is RowKind.PAYMENT)
    live = [r for r in rows if r.kind is RowKind.REFUND and r.status in LIVE_REFUND_STATUSES]
    fees = sum(r.fee_fen for r in rows if r.kind is RowKind.PAYMENT) + sum(r.fee_fen for r in live)
    return payments, sum(r.amount_fen for r in live), fees


def check_fund_flow(outcome: Outcome, fund: FundFlow | None) -> Difference | None:
    """Income = the day's payments; expense = their fees + live refunds net of returned fees."""
    income = outcome.payments_fen
    expense = outcome.fees_fen + outcome.live_refunds_fen
    if fund is None:
        if income == 0 and expense == 0:
            return None
        return Difference(
            ExceptionKind.FUND_FLOW_MISMATCH, local_fen=income - expense, detail="no fund-flow bill"
        )
    if (fund.income_fen, fund.expense_fen) == (income, expense):
        return None
    return Difference(
        ExceptionKind.FUND_FLOW_MISMATCH,
        local_fen=income - expense,
        remote_fen=fund.income_fen - fund.expense_fen,
        detail=(
            f"fund flow in {yuan(fund.income_fen)} out {yuan(fund.expense_fen)};"
            f" trade bill in {yuan(income)} out {yuan(expense)}"
        ),
    )
