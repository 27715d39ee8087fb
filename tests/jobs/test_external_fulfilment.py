"""Fulfilment by the business (kind EXTERNAL) on SQLite and PostgreSQL: the request on the feed, the
answers, re-requests on the retry schedule, the give-up with its automatic refund, and the answers
that must change nothing (twice, late, another account's order, not an EXTERNAL order)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orderpay.v1 import events_pb2
from server.app import App
from server.domain.catalogue import ProductKind
from server.domain.errors import (
    FulfilmentAlreadyDecidedError,
    InvalidArgumentError,
    NotExternalFulfilmentError,
    OrderNotFoundError,
)
from server.domain.feed import FeedFilter
from server.domain.fulfilment import GrantState, LedgerStatus, Outcome, RetryPolicy
from server.domain.order import Fulfilment, Order, compensation_refund_no
from server.service.context import Caller
from server.wxpay.wire import refund_report
from tests.jobs.helpers import (
    MovableClock,
    add_product,
    grants_for,
    ledger_row,
    make_worker,
    paid_order,
    refunds_for,
)

BUSINESS = Caller("feed", "test")
DEADLINE = timedelta(seconds=300)


def feed_for(app: App, order_id: str, after: int = 0) -> list[events_pb2.FeedEvent]:
    out, cursor = [], after
    while True:
        batch = app.feed.read(cursor, FeedFilter(), 200)
        out.extend(events_pb2.FeedEvent.FromString(e.payload) for e in batch.events)
        if cursor == batch.scanned_to:
            return [e for e in out if e.order_id == order_id]
        cursor = batch.scanned_to


def types(events: list[events_pb2.FeedEvent]) -> list[str]:
    return [events_pb2.EventType.Name(e.type).removeprefix("EVENT_TYPE_") for e in events]


@pytest.fixture
def external_order(jobs_app: App, rid: str) -> Order:
    add_product(jobs_app, f"gift-{rid}", ProductKind.EXTERNAL)
    return paid_order(jobs_app, f"u-{rid}", f"gift-{rid}")


def requested(app: App, order: Order, **kwargs: object) -> None:
    worker = make_worker(app, external_deadline=DEADLINE, **kwargs)  # type: ignore[arg-type]
    assert worker.run_for_order(order.order_id).outcome is Outcome.REQUESTED


def test_a_paid_external_order_is_requested_on_the_feed_and_confirmed(
    jobs_app: App, external_order: Order
) -> None:
    requested(jobs_app, external_order)
    events = feed_for(jobs_app, external_order.order_id)
    assert types(events) == ["ORDER_CREATED", "ORDER_PAID", "FULFILMENT_REQUESTED"]
    assert events[-1].attempt == 1
    assert jobs_app.orders.get_order(external_order.order_id).fulfilment is Fulfilment.PENDING

    done = jobs_app.payments.external.confirm(external_order.order_id, "code ABC-123 sent", "", BUSINESS)
    assert done.fulfilment is Fulfilment.SUCCEEDED
    assert ledger_row(jobs_app, external_order.order_id).status == LedgerStatus.SUCCEEDED
    assert [g.state for g in grants_for(jobs_app, external_order.order_id)] == [GrantState.GRANTED]
    assert types(feed_for(jobs_app, external_order.order_id))[-1] == "FULFILMENT_SUCCEEDED"


def test_confirming_twice_or_after_a_failure_changes_nothing(jobs_app: App, external_order: Order) -> None:
    requested(jobs_app, external_order)
    external = jobs_app.payments.external
    external.confirm(external_order.order_id, "", "default", BUSINESS)
    head = jobs_app.feed.head()
    with pytest.raises(FulfilmentAlreadyDecidedError):
        external.confirm(external_order.order_id, "", "default", BUSINESS)
    with pytest.raises(FulfilmentAlreadyDecidedError):
        external.fail(external_order.order_id, "changed my mind", "default", BUSINESS)
    assert jobs_app.orders.get_order(external_order.order_id).fulfilment is Fulfilment.SUCCEEDED
    assert refunds_for(jobs_app, external_order.order_id) == []
    assert feed_for(jobs_app, external_order.order_id, head) == []


def test_failing_fails_the_order_and_refunds_it_like_a_built_in_kind(
    jobs_app: App, external_order: Order
) -> None:
    requested(jobs_app, external_order)
    failed = jobs_app.payments.external.fail(external_order.order_id, "out of stock", "", BUSINESS)
    assert failed.fulfilment is Fulfilment.FAILED
    assert failed.fulfilment_reason == "out of stock"
    [refund] = refunds_for(jobs_app, external_order.order_id)
    assert refund.out_refund_no == compensation_refund_no(external_order.order_id)
    assert types(feed_for(jobs_app, external_order.order_id))[-2:] == [
        "FULFILMENT_FAILED",
        "REFUND_REQUESTED",
    ]
    with pytest.raises(FulfilmentAlreadyDecidedError):  # late: the order already failed
        jobs_app.payments.external.confirm(external_order.order_id, "", "", BUSINESS)


def test_another_accounts_order_is_not_found_and_unchanged(jobs_app: App, external_order: Order) -> None:
    requested(jobs_app, external_order)
    with pytest.raises(OrderNotFoundError):
        jobs_app.payments.external.confirm(external_order.order_id, "", "other-merchant", BUSINESS)
    assert jobs_app.orders.get_order(external_order.order_id).fulfilment is Fulfilment.PENDING
    assert ledger_row(jobs_app, external_order.order_id).status == LedgerStatus.PENDING


def test_a_built_in_kind_cannot_be_confirmed_by_the_business(jobs_app: App, rid: str) -> None:
    order = paid_order(jobs_app, f"u-{rid}", "vip-month")
    with pytest.raises(NotExternalFulfilmentError):
        jobs_app.payments.external.confirm(order.order_id, "", "", BUSINESS)
    with pytest.raises(InvalidArgumentError):
        jobs_app.payments.external.fail(order.order_id, " ", "", BUSINESS)
    assert jobs_app.orders.get_order(order.order_id).fulfilment is Fulfilment.PENDING


def test_unanswered_requests_are_repeated_then_the_order_fails_and_is_refunded(
    jobs_app: App, clock: MovableClock, external_order: Order
) -> None:
    policy = RetryPolicy(max_attempts=3, base_s=10, max_s=20)
    worker = make_worker(jobs_app, policy=policy, external_deadline=DEADLINE)
    order_id = external_order.order_id
    assert worker.run_for_order(order_id).outcome is Outcome.REQUESTED
    assert worker.run_for_order(order_id).outcome is Outcome.NOT_DUE  # the deadline has not passed
    for _ in range(2):
        clock.move_to(ledger_row(jobs_app, order_id).next_attempt_at.replace(tzinfo=clock().tzinfo))
        assert worker.run_for_order(order_id).outcome is Outcome.REQUESTED
    clock.move_to(ledger_row(jobs_app, order_id).next_attempt_at.replace(tzinfo=clock().tzinfo))
    assert worker.run_for_order(order_id).outcome is Outcome.FAILED
    events = feed_for(jobs_app, order_id)
    assert [e.attempt for e in events if e.type == events_pb2.EVENT_TYPE_FULFILMENT_REQUESTED] == [1, 2, 3]
    assert types(events)[-2:] == ["FULFILMENT_FAILED", "REFUND_REQUESTED"]
    order = jobs_app.orders.get_order(order_id)
    assert order.fulfilment is Fulfilment.FAILED
    assert "no answer" in order.fulfilment_reason
    assert len(refunds_for(jobs_app, order_id)) == 1
    with pytest.raises(FulfilmentAlreadyDecidedError):  # the business answers too late
        jobs_app.payments.external.confirm(order_id, "", "", BUSINESS)


def test_a_refund_of_an_external_order_publishes_grant_revoked(
    jobs_app: App, external_order: Order, rid: str
) -> None:
    requested(jobs_app, external_order)
    jobs_app.payments.external.confirm(external_order.order_id, "", "", BUSINESS)
    refunds = jobs_app.payments.refunds
    out_refund_no = f"R{rid}"
    refunds.refund_order(
        external_order.order_id, out_refund_no, external_order.total_fee, "test", Caller("admin")
    )
    settled = {"out_refund_no": out_refund_no, "refund_status": "SUCCESS", "refund_id": f"50{rid}"}
    assert refunds.apply_refund(refund_report(settled), source="test").outcome == "applied"
    tail = types(feed_for(jobs_app, external_order.order_id))
    assert tail[-3:] == ["REFUND_REQUESTED", "REFUND_SUCCEEDED", "GRANT_REVOKED"]
    assert [g.state for g in grants_for(jobs_app, external_order.order_id)] == [GrantState.REVOKED]
