"""Reads of orderpay's own payments and refunds for reconciliation: the day's window first, then the
bill's keys that were not in it (by the natural key, then by WeChat's id). Every read keeps to the
window's accounts: another account's order of the same number is never taken for one in this bill."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import peewee as pw

from server.adapters.tables import OrderRow, RefundRow
from server.adapters.times import from_db_time, to_db_time
from server.domain.recon_records import LocalPayment, LocalRefund
from server.domain.reconciliation import Window

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # stands in for a NULL that cannot happen
CHUNK = 400  # keys per IN (...) query: well under SQLite's variable limit


def dicts(query: pw.ModelSelect[Any]) -> Iterable[dict[str, Any]]:
    """Rows as column → value (peewee's `.dicts()`; its stubs type the rows as models)."""
    rows: Iterable[dict[str, Any]] = query.dicts()
    return rows


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


class PeeweeLocalRecords:
    def local_payments(
        self, out_trade_nos: Sequence[str], transaction_ids: Sequence[str], window: Window
    ) -> list[LocalPayment]:
        """The window's paid orders, then the bill's keys not among them (by out_trade_no, then by
        transaction_id); the two key lists are aligned, one pair per payment row."""
        fields = (
            OrderRow.order_id,
            OrderRow.out_trade_no,
            OrderRow.transaction_id,
            OrderRow.paid_fee,
            OrderRow.paid_at,
        )
        found: dict[str, LocalPayment] = {}

        def take(query: pw.ModelSelect[Any]) -> None:
            for row in dicts(query):
                found[row["out_trade_no"]] = LocalPayment(
                    order_id=row["order_id"],
                    out_trade_no=row["out_trade_no"],
                    transaction_id=row["transaction_id"],
                    paid_fen=row["paid_fee"] if row["transaction_id"] else 0,
                    paid_at=from_db_time(row["paid_at"]),
                )

        base = _of_accounts(OrderRow.select(*fields), window)
        take(
            base.where(
                OrderRow.paid_at >= to_db_time(window.start),
                OrderRow.paid_at < to_db_time(window.end),
                OrderRow.transaction_id.is_null(False),
            )
        )
        for chunk in _chunks([no for no in dict.fromkeys(out_trade_nos) if no not in found]):
            take(base.where(OrderRow.out_trade_no.in_(list(chunk))))
        known = {p.transaction_id for p in found.values()}
        unmatched = [
            t
            for no, t in zip(out_trade_nos, transaction_ids, strict=True)
            if no not in found and t not in known
        ]
        for chunk in _chunks(list(dict.fromkeys(t for t in unmatched if t))):
            take(base.where(OrderRow.transaction_id.in_(list(chunk))))
        return list(found.values())

    def local_refunds(
        self, out_refund_nos: Sequence[str], refund_ids: Sequence[str], window: Window
    ) -> list[LocalRefund]:
        """Like `local_payments`: the window's refunds, then the bill's keys not among them."""
        fields = (
            RefundRow.out_refund_no,
            RefundRow.refund_id,
            OrderRow.out_trade_no,
            RefundRow.amount,
            RefundRow.status,
            RefundRow.created_at,
        )
        joined = RefundRow.select(*fields).join(OrderRow, on=(RefundRow.order_id == OrderRow.order_id))
        base = _of_accounts(joined, window)
        found: dict[str, LocalRefund] = {}

        def take(query: pw.ModelSelect[Any]) -> None:
            for row in dicts(query):
                found[row["out_refund_no"]] = LocalRefund(
                    out_refund_no=row["out_refund_no"],
                    refund_id=row["refund_id"],
                    out_trade_no=row["out_trade_no"],
                    amount_fen=row["amount"],
                    status=row["status"],
                    created_at=from_db_time(row["created_at"]) or EPOCH,
                )

        take(
            base.where(
                RefundRow.created_at >= to_db_time(window.start),
                RefundRow.created_at < to_db_time(window.end),
            )
        )
        for chunk in _chunks([no for no in dict.fromkeys(out_refund_nos) if no not in found]):
            take(base.where(RefundRow.out_refund_no.in_(list(chunk))))
        known = {r.refund_id for r in found.values()}
        unmatched = [
            i for no, i in zip(out_refund_nos, refund_ids, strict=True) if no not in found and i not in known
        ]
        for chunk in _chunks(list(dict.fromkeys(i for i in unmatched if i))):
            take(base.where(RefundRow.refund_id.in_(list(chunk))))
        return list(found.values())

    def order_id_of(self, out_trade_no: str, account: str | None = None) -> str | None:
        query = OrderRow.select(OrderRow.order_id).where(OrderRow.out_trade_no == out_trade_no)
        if account is not None:
            query = query.where(OrderRow.account == account)
        row = query.first()
        return None if row is None else str(row.order_id)


def _of_accounts(query: pw.ModelSelect[Any], window: Window) -> pw.ModelSelect[Any]:
    """Only the orders of the accounts this bill is for (issue 18); None: every order (one account)."""
    if window.accounts is None:
        return query
    return query.where(OrderRow.account.in_(sorted(window.accounts)))
