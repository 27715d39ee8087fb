"""Refunds: one row per out_refund_no, settled by WeChat's answer, a notification or the poller."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RefundStatus(StrEnum):
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    CLOSED = "CLOSED"
    ABNORMAL = "ABNORMAL"

    @property
    def counts_against_paid(self) -> bool:
        """Money that is, or may still be, on its way back to the payer. An ABNORMAL refund left the
        merchant's account but did not reach the payer (a closed card): it is still owed to the payer
        and completes once the merchant applies WeChat's abnormal-refund follow-up."""
        return self in {RefundStatus.PROCESSING, RefundStatus.SUCCESS, RefundStatus.ABNORMAL}

    @property
    def final(self) -> bool:
        """No later report changes it. ABNORMAL is not final: a later SUCCESS (or CLOSED) applies."""
        return self in {RefundStatus.SUCCESS, RefundStatus.CLOSED}

    def may_become(self, reported: RefundStatus) -> bool:
        """The provider's report moves a refund only forward: PROCESSING to any end, ABNORMAL out of it."""
        if self.final or reported is self:
            return False
        return reported is not RefundStatus.PROCESSING


@dataclass(frozen=True)
class Refund:
    out_refund_no: str
    order_id: str
    amount: int
    order_total: int
    status: RefundStatus
    reason: str
    submitted: bool
    version: int
    created_at: datetime
    updated_at: datetime
    refund_id: str | None = None
    succeeded_at: datetime | None = None
    poll_attempts: int = 0


LIVE_REFUND_STATUSES = frozenset(s for s in RefundStatus if s.counts_against_paid)


def live_refund_amount(refunds: Iterable[Refund]) -> int:
    """What of an order is, or may still be, going back to the payer (`Refunds.committed_amount`)."""
    return sum(r.amount for r in refunds if r.status.counts_against_paid)


@dataclass(frozen=True)
class PlannedRefund:
    """A refund to record: its number (the idempotency key at WeChat), order, amount and reason."""

    out_refund_no: str
    order_id: str
    amount: int
    reason: str

    def new_refund(self, order_total: int, now: datetime) -> Refund:
        return Refund(
            out_refund_no=self.out_refund_no,
            order_id=self.order_id,
            amount=self.amount,
            order_total=order_total,
            status=RefundStatus.PROCESSING,
            reason=self.reason,
            submitted=False,
            version=1,
            created_at=now,
            updated_at=now,
        )
