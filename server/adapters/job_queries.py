"""What the background jobs select and claim, and what `orderpay purge` deletes.

A claim runs in one short transaction and moves a column forward as a lease, by compare-and-set on
its old value, so another process's claim finds nothing to take. On PostgreSQL the candidate rows are
also selected `FOR UPDATE SKIP LOCKED`, so concurrent claimers split the batch instead of queueing.
Claims never bump an order's `version`: that token belongs to clients and the payment path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import peewee as pw

from server.adapters.tables import FulfilmentRow, OrderEventRow, OrderRow, RefundRow
from server.adapters.times import from_db_time, to_db_time
from server.domain.order import OrderStatus
from server.domain.refund import RefundStatus
from server.service.shapes import PurgeReport

PURGE_BATCH = 500
_Row = TypeVar("_Row", bound=pw.Model)


class JobQueries:
    def __init__(self, db: pw.Database) -> None:
        self._skip_locked = not isinstance(db, pw.SqliteDatabase)

    def _lockable(self, query: pw.ModelSelect[_Row]) -> pw.ModelSelect[_Row]:
        return query.for_update(skip_locked=True) if self._skip_locked else query

    # --- expiry ----------------------------------------------------------------------------------
    def _overdue(self, now: datetime) -> pw.Expression:
        return (OrderRow.status == OrderStatus.UNPAID) & (OrderRow.expires_at <= to_db_time(now))

    def claim_overdue_unpaid(self, now: datetime, limit: int, lease: timedelta) -> list[str]:
        """Overdue UNPAID orders not touched within `lease`; the claim touches `updated_at`."""
        query = (
            OrderRow.select(OrderRow.order_id, OrderRow.updated_at)
            .where(self._overdue(now) & (OrderRow.updated_at <= to_db_time(now - lease)))
            .order_by(OrderRow.expires_at)
            .limit(limit)
        )
        claimed = []
        for row in self._lockable(query):
            taken = (
                OrderRow.update(updated_at=to_db_time(now))
                .where(
                    (OrderRow.order_id == row.order_id)
                    & (OrderRow.updated_at == row.updated_at)
                    & (OrderRow.status == OrderStatus.UNPAID)
                )
                .execute()
            )
            if taken:
                claimed.append(row.order_id)
        return claimed

    def oldest_overdue_unpaid(self, now: datetime) -> datetime | None:
        return _min(OrderRow.expires_at, self._overdue(now))

    # --- payment reconciliation ------------------------------------------------------------------
    def _sync_due(self, now: datetime) -> pw.Expression:
        return (
            (OrderRow.status == OrderStatus.UNPAID)
            & OrderRow.prepay_id.is_null(False)
            & (OrderRow.next_sync_at <= to_db_time(now))
        )

    def claim_due_syncs(self, now: datetime, limit: int, lease: timedelta) -> list[str]:
        """UNPAID orders with a prepay whose next query is due; the claim pushes `next_sync_at`."""
        query = (
            OrderRow.select(OrderRow.order_id, OrderRow.next_sync_at)
            .where(self._sync_due(now))
            .order_by(OrderRow.next_sync_at)
            .limit(limit)
        )
        claimed = []
        for row in self._lockable(query):
            taken = (
                OrderRow.update(next_sync_at=to_db_time(now + lease))
                .where((OrderRow.order_id == row.order_id) & (OrderRow.next_sync_at == row.next_sync_at))
                .execute()
            )
            if taken:
                claimed.append(row.order_id)
        return claimed

    def oldest_due_sync(self, now: datetime) -> datetime | None:
        return _min(OrderRow.next_sync_at, self._sync_due(now))

    # --- refund polling --------------------------------------------------------------------------
    def _poll_due(self, now: datetime) -> pw.Expression:
        return (RefundRow.status == RefundStatus.PROCESSING) & (RefundRow.next_poll_at <= to_db_time(now))

    def claim_due_refund_polls(self, now: datetime, limit: int, lease: timedelta) -> list[str]:
        """PROCESSING refunds due a poll; the claim pushes `next_poll_at` (sync_refund reschedules)."""
        query = (
            RefundRow.select(RefundRow.out_refund_no, RefundRow.next_poll_at)
            .where(self._poll_due(now))
            .order_by(RefundRow.next_poll_at)
            .limit(limit)
        )
        claimed = []
        for row in self._lockable(query):
            taken = (
                RefundRow.update(next_poll_at=to_db_time(now + lease))
                .where(
                    (RefundRow.out_refund_no == row.out_refund_no)
                    & (RefundRow.next_poll_at == row.next_poll_at)
                    & (RefundRow.status == RefundStatus.PROCESSING)
                )
                .execute()
            )
            if taken:
                claimed.append(row.out_refund_no)
        return claimed

    def oldest_due_refund_poll(self, now: datetime) -> datetime | None:
        return _min(RefundRow.next_poll_at, self._poll_due(now))

    # --- purge -----------------------------------------------------------------------------------
    def purgeable_orders(
        self, cutoff: datetime, after_seq: int = 0, limit: int = PURGE_BATCH
    ) -> list[tuple[int, str]]:
        """Never-paid CLOSED orders closed before `cutoff`, with nothing that ever hung off a payment,
        as (seq, order_id) in seq order after `after_seq` (keyset paging)."""
        closed_before = pw.fn.COALESCE(OrderRow.closed_at, OrderRow.updated_at) < to_db_time(cutoff)
        has_money_rows = pw.fn.EXISTS(
            RefundRow.select(RefundRow.out_refund_no).where(RefundRow.order_id == OrderRow.order_id)
        ) | pw.fn.EXISTS(
            FulfilmentRow.select(FulfilmentRow.order_id).where(FulfilmentRow.order_id == OrderRow.order_id)
        )
        query = (
            OrderRow.select(OrderRow.id, OrderRow.order_id)
            .where(
                (OrderRow.id > after_seq)
                & (OrderRow.status == OrderStatus.CLOSED)
                & (OrderRow.paid_fee == 0)
                & OrderRow.transaction_id.is_null()
                & closed_before
                & ~has_money_rows
            )
            .order_by(OrderRow.id)
            .limit(limit)
        )
        return [(row.id, row.order_id) for row in query]

    @staticmethod
    def count_events(order_ids: Sequence[str]) -> int:
        return OrderEventRow.select().where(OrderEventRow.order_id.in_(list(order_ids))).count()

    @staticmethod
    def delete_orders(order_ids: Sequence[str]) -> PurgeReport:
        ids = list(order_ids)
        events = OrderEventRow.delete().where(OrderEventRow.order_id.in_(ids)).execute()  # type: ignore[misc]  # types-peewee: Model.delete is a generic classmethod
        orders = (
            OrderRow.delete()  # type: ignore[misc]  # types-peewee: Model.delete is a generic classmethod
            .where(
                OrderRow.order_id.in_(ids)
                & (OrderRow.status == OrderStatus.CLOSED)
                & (OrderRow.paid_fee == 0)
            )
            .execute()
        )
        return PurgeReport(orders=orders, events=events)


def _min(column: pw.Field, where: pw.Expression) -> datetime | None:
    model = column.model
    return from_db_time(model.select(pw.fn.MIN(column)).where(where).scalar())
