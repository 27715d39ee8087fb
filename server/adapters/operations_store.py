"""The fulfilment ledger as the operator's use cases move it. Runs inside the caller's unit of work."""

from __future__ import annotations

from datetime import datetime

from server.adapters.tables import FulfilmentRow, RefundRow
from server.adapters.times import to_db_time
from server.domain.order import Order


class PeeweeLedgerControl:
    def status(self, order_id: str) -> str | None:
        row = FulfilmentRow.get_or_none(FulfilmentRow.order_id == order_id)
        return None if row is None else str(row.status)

    def restart(self, order: Order, now: datetime) -> None:
        """A fresh PENDING row, due now with no attempts counted: insert, or reset a FAILED one."""
        at = to_db_time(now)
        # The caller's compare-and-set on the order's version serialises this: no insert race here.
        if FulfilmentRow.get_or_none(FulfilmentRow.order_id == order.order_id) is None:
            FulfilmentRow.insert(
                order_id=order.order_id,
                kind=order.kind.value,
                status="PENDING",
                next_attempt_at=at,
                created_at=at,
                updated_at=at,
            ).execute()
            return
        FulfilmentRow.update(
            status="PENDING",
            attempts=0,
            next_attempt_at=at,
            last_error="",
            updated_at=at,
            version=FulfilmentRow.version + 1,
        ).where((FulfilmentRow.order_id == order.order_id) & (FulfilmentRow.status != "SUCCEEDED")).execute()

    def due_now(self, order_id: str, now: datetime) -> bool:
        at = to_db_time(now)
        return bool(
            FulfilmentRow.update(next_attempt_at=at, updated_at=at, version=FulfilmentRow.version + 1)
            .where((FulfilmentRow.order_id == order_id) & (FulfilmentRow.status == "PENDING"))
            .execute()
        )

    def stop(self, order_id: str, now: datetime, error: str) -> bool:
        at = to_db_time(now)
        return bool(
            FulfilmentRow.update(
                status="FAILED", last_error=error[:1000], updated_at=at, version=FulfilmentRow.version + 1
            )
            .where((FulfilmentRow.order_id == order_id) & (FulfilmentRow.status == "PENDING"))
            .execute()
        )

    def stop_refund_poll(self, out_refund_no: str, now: datetime) -> bool:
        """The poller leaves the refund alone (it stays PROCESSING, listed as stuck, until settled)."""
        return bool(
            RefundRow.update(next_poll_at=None, updated_at=to_db_time(now), version=RefundRow.version + 1)
            .where(
                (RefundRow.out_refund_no == out_refund_no)
                & (RefundRow.status == "PROCESSING")
                & RefundRow.next_poll_at.is_null(False)
            )
            .execute()
        )
