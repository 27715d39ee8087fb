"""Refunds: one row per out_refund_no, settled by WeChat's answer, a notification or the poller."""

from __future__ import annotations

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
        """Money that is, or may still be, on its way back to the payer."""
        return self in {RefundStatus.PROCESSING, RefundStatus.SUCCESS}

    @property
    def final(self) -> bool:
        return self is not RefundStatus.PROCESSING


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
