"""Matching one account's bill rows against its local records, and what a run repairs on the way:
a `MISSING_LOCAL` whose order exists is applied through the payment query path, a refund the bill
shows settled is queried now. Split from server/service/reconciliation.py (the run and its storage)."""

from __future__ import annotations

from datetime import date, timedelta

import structlog

from server.domain.errors import DomainError
from server.domain.recon_records import BillRow, LocalPayment, LocalRefund, RowKind
from server.domain.reconciliation import Difference, ExceptionStatus, Outcome, Window, reconcile
from server.service.context import Caller
from server.service.ports import PaymentSyncer, ReadFactory, Refunder

log = structlog.get_logger("orderpay.recon")


class BillMatcher:
    def __init__(self, read: ReadFactory, payments: PaymentSyncer | None, refunds: Refunder | None) -> None:
        self._read = read
        self._payments = payments
        self._refunds = refunds

    def match(
        self, day: date, account: str, rows: list[BillRow], window: Window, caller: Caller
    ) -> tuple[Outcome, list[tuple[Difference, ExceptionStatus]]]:
        payments, refunds, earlier = self._locals(day, account, rows, window)
        outcome = reconcile(rows, payments, refunds, window, earlier)
        self._settle_refunds(outcome.settled_remotely, caller)
        repairable = [d for d in outcome.differences if d.repairable]
        if not repairable or self._payments is None:
            return outcome, [(d, ExceptionStatus.OPEN) for d in outcome.differences]
        self._repair(repairable, payments, caller)
        # Re-match with what the repairs wrote: a repaired row now matches (or shows its real difference).
        payments, refunds, earlier = self._locals(day, account, rows, window)
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
        self, day: date, account: str, rows: list[BillRow], window: Window
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
            earlier = uow.recon.line_keys(day - timedelta(days=1), account)
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
