"""What needs a person, in SQL: the domain's rules (server.domain.operations, refund and notification
statuses) over the tables, for the operator's read side (server.adapters.admin_queries)."""

from __future__ import annotations

from datetime import datetime, timedelta

import peewee as pw

from server.adapters.tables import NotificationRow, OrderRow, RefundRow
from server.adapters.times import to_db_time
from server.domain.notification import NotificationStatus
from server.domain.operations import RESOLVED_BY_REFUND, RETRY_FULFILMENT_STATUSES
from server.domain.order import Fulfilment
from server.domain.outcomes import ApplyOutcome, NotificationOutcome
from server.domain.refund import LIVE_REFUND_STATUSES, RefundStatus

# Outcomes a person must look at that no HELD order already shows (amount_mismatch and paid_after_close do).
FAILING_OUTCOMES = tuple(
    o.value
    for o in (
        ApplyOutcome.UNKNOWN_ORDER,
        ApplyOutcome.IDENTITY_MISMATCH,
        ApplyOutcome.REFUND_UNKNOWN,
        NotificationOutcome.INVALID_RESOURCE,
        NotificationOutcome.ERROR,
    )
)


def needs_a_human() -> pw.Expression:
    """`server.domain.operations.needs_a_human` in SQL, built from the same domain constants (a test
    holds the two to the same fixtures): HELD while what is back or going back (`live_refund_amount`,
    LIVE_REFUND_STATUSES) is less than what was paid, or a FAILED fulfilment that could be retried."""
    mine = (RefundRow.order_id == OrderRow.order_id) & RefundRow.status.in_(
        [s.value for s in LIVE_REFUND_STATUSES]
    )
    live_refund = pw.fn.EXISTS(RefundRow.select(RefundRow.out_refund_no).where(mine))
    live_fen = pw.fn.COALESCE(RefundRow.select(pw.fn.SUM(RefundRow.amount)).where(mine), 0)
    prefix = pw.fn.SUBSTR(OrderRow.fulfilment_reason, 1, len(RESOLVED_BY_REFUND))
    resolved_by_refund: pw.Expression = prefix == RESOLVED_BY_REFUND
    retryable = (
        (OrderRow.fulfilment == Fulfilment.FAILED.value)
        & OrderRow.status.in_([s.value for s in RETRY_FULFILMENT_STATUSES])
        & ~resolved_by_refund
        & ~live_refund
    )
    owed = live_fen < OrderRow.paid_fee  # not `nothing_owed`
    needs: pw.Expression = ((OrderRow.fulfilment == Fulfilment.HELD.value) & owed) | retryable
    return needs


def stuck_refund(now: datetime | None, after: timedelta = timedelta(minutes=10)) -> pw.Expression:
    stuck = RefundRow.status == RefundStatus.ABNORMAL.value
    processing = RefundRow.status == RefundStatus.PROCESSING.value
    stalled = RefundRow.next_poll_at.is_null()  # polling revoked or never scheduled
    if now is not None:
        stalled = stalled | (RefundRow.created_at <= to_db_time(now - after))
    return stuck | (processing & stalled)


def failing_notification() -> pw.Expression:
    return (NotificationRow.status == NotificationStatus.FAILED.value) | (
        (NotificationRow.status == NotificationStatus.PROCESSED.value)
        & NotificationRow.outcome.in_(FAILING_OUTCOMES)
    )
