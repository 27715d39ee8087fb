"""Refunds: one row per out_refund_no, settled by WeChat's answer, a notification or the poller."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from server.domain.outcomes import ApplyOutcome


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
    next_poll_at: datetime | None = None  # when the refund job asks WeChat next; None: nobody polls it

    # --- transitions: each returns the new state, unsaved (`Refunds.save(before, after)`) -----------
    def settle(
        self,
        status: RefundStatus,
        now: datetime,
        *,
        refund_id: str | None = None,
        success_time: datetime | None = None,
    ) -> RefundTransition:
        """WeChat's word that the refund ended (`status`): only forward, and never again once final."""
        if not self.status.may_become(status):
            return RefundTransition(self, ApplyOutcome.DUPLICATE)
        settled = replace(
            self,
            status=status,
            submitted=True,
            updated_at=now,
            next_poll_at=None,
            refund_id=refund_id or self.refund_id,
            succeeded_at=(success_time or now) if status is RefundStatus.SUCCESS else self.succeeded_at,
        )
        outcome = ApplyOutcome.REFUND_ABNORMAL if status is RefundStatus.ABNORMAL else ApplyOutcome.APPLIED
        return RefundTransition(settled, outcome)

    def submitted_as(self, refund_id: str | None, next_poll_at: datetime, now: datetime) -> Refund:
        """WeChat took the request: poll for its end from `next_poll_at`."""
        return replace(
            self,
            submitted=True,
            refund_id=refund_id or self.refund_id,
            next_poll_at=next_poll_at,
            updated_at=now,
        )

    def deferred(self, next_poll_at: datetime, now: datetime) -> Refund:
        """WeChat could not be reached: the refund job submits it again (same out_refund_no) later."""
        return replace(self, next_poll_at=next_poll_at, updated_at=now)

    def rejected(self, now: datetime) -> Refund:
        """WeChat refused the request itself: no refund exists there, so none counts here."""
        return replace(self, status=RefundStatus.CLOSED, submitted=True, next_poll_at=None, updated_at=now)

    def polled(self, next_poll_at: datetime, now: datetime) -> Refund:
        """Still PROCESSING at WeChat: ask again at `next_poll_at`."""
        return replace(self, poll_attempts=self.poll_attempts + 1, next_poll_at=next_poll_at, updated_at=now)

    def reopened(self, next_poll_at: datetime, now: datetime) -> Refund:
        """An ABNORMAL refund re-routed (apply-abnormal-refund): PROCESSING again until WeChat settles it."""
        return replace(
            self, status=RefundStatus.PROCESSING, poll_attempts=0, next_poll_at=next_poll_at, updated_at=now
        )


@dataclass(frozen=True)
class RefundTransition:
    """`Refund.settle`'s answer: the new state (unsaved) and what happened."""

    refund: Refund
    outcome: ApplyOutcome

    @property
    def changed(self) -> bool:
        return self.outcome is not ApplyOutcome.DUPLICATE


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
