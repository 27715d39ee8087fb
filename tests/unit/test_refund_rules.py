"""Refund transitions: pure rules, no database (saved by `Refunds.save(before, after)`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.domain.outcomes import ApplyOutcome
from server.domain.refund import PlannedRefund, Refund, RefundStatus

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def processing() -> Refund:
    refund = PlannedRefund("R1", "o1", 600, "part").new_refund(1800, NOW)
    return refund.submitted_as("50R1", NOW + timedelta(minutes=1), NOW)


def test_success_settles_once_with_wechats_time() -> None:
    paid_back_at = NOW + timedelta(seconds=30)
    settled = processing().settle(RefundStatus.SUCCESS, LATER, success_time=paid_back_at)
    assert settled.outcome is ApplyOutcome.APPLIED
    refund = settled.refund
    assert (refund.status, refund.succeeded_at, refund.next_poll_at, refund.updated_at) == (
        RefundStatus.SUCCESS,
        paid_back_at,
        None,
        LATER,
    )
    assert refund.refund_id == "50R1"  # an answer without refund_id keeps the one we had
    again = refund.settle(RefundStatus.SUCCESS, LATER)
    assert (again.outcome, again.changed, again.refund) == (ApplyOutcome.DUPLICATE, False, refund)


def test_success_without_a_time_is_dated_now() -> None:
    assert processing().settle(RefundStatus.SUCCESS, LATER).refund.succeeded_at == LATER


def test_abnormal_is_not_final_and_a_later_success_applies() -> None:
    abnormal = processing().settle(RefundStatus.ABNORMAL, LATER)
    assert abnormal.outcome is ApplyOutcome.REFUND_ABNORMAL
    assert abnormal.refund.succeeded_at is None
    assert abnormal.refund.status.counts_against_paid
    assert abnormal.refund.settle(RefundStatus.SUCCESS, LATER).outcome is ApplyOutcome.APPLIED
    assert abnormal.refund.settle(RefundStatus.PROCESSING, LATER).changed is False  # never backwards


def test_closed_is_final() -> None:
    closed = processing().settle(RefundStatus.CLOSED, LATER).refund
    assert not closed.status.counts_against_paid
    assert closed.settle(RefundStatus.SUCCESS, LATER).changed is False


def test_the_bookkeeping_transitions() -> None:
    refund = processing()
    polled = refund.polled(LATER, NOW)
    assert (polled.poll_attempts, polled.next_poll_at) == (1, LATER)
    rejected = PlannedRefund("R2", "o1", 600, "x").new_refund(1800, NOW).rejected(NOW)
    assert (rejected.status, rejected.submitted, rejected.next_poll_at) == (RefundStatus.CLOSED, True, None)
    reopened = refund.settle(RefundStatus.ABNORMAL, NOW).refund.polled(LATER, NOW).reopened(LATER, NOW)
    assert (reopened.status, reopened.poll_attempts, reopened.next_poll_at) == (
        RefundStatus.PROCESSING,
        0,
        LATER,
    )
