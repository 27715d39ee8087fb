"""Fulfilment on SQLite and PostgreSQL: handlers by kind, exactly once under concurrency, backoff,
FAILED plus one automatic refund, and grants taken back by a full refund."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from server.adapters.tables import OrderEventRow
from server.adapters.times import from_db_time
from server.adapters.unit_of_work import unit_of_work_factory
from server.app import App
from server.bootstrap import retry_policy
from server.domain.catalogue import ProductKind
from server.domain.fulfilment import FulfilmentContext, GrantState, LedgerStatus, Outcome, RetryPolicy
from server.domain.order import Fulfilment, compensation_refund_no
from server.service.context import Caller
from server.service.fulfilment import FulfilmentWorker
from server.service.handlers import Policy, transactional
from server.wxpay.wire import refund_report
from tests.jobs.helpers import (
    MovableClock,
    add_product,
    grants_for,
    ledger_row,
    make_worker,
    membership_expiry,
    paid_order,
    refunds_for,
)


def test_vip_extends_by_plan_days_times_quantity(jobs_app: App, clock: MovableClock, rid: str) -> None:
    user = f"u-{rid}"
    order = paid_order(jobs_app, user, "vip-month", quantity=2)
    before = clock()
    assert make_worker(jobs_app).run_for_order(order.order_id).outcome is Outcome.SUCCEEDED
    expires = membership_expiry(jobs_app, user)
    assert expires is not None
    assert before + timedelta(days=60) <= expires <= clock() + timedelta(days=60)
    [grant] = grants_for(jobs_app, order.order_id)
    assert (grant.kind, grant.days, grant.state) == ("VIP_PLAN", 60, "GRANTED")
    final = jobs_app.orders.get_order(order.order_id)
    assert final.fulfilment is Fulfilment.SUCCEEDED
    assert ledger_row(jobs_app, order.order_id).status == LedgerStatus.SUCCEEDED


def test_vip_stacks_on_an_active_membership(jobs_app: App, rid: str) -> None:
    user = f"u-{rid}"
    worker = make_worker(jobs_app)
    first = paid_order(jobs_app, user, "vip-month")
    worker.run_for_order(first.order_id)
    after_first = membership_expiry(jobs_app, user)
    second = paid_order(jobs_app, user, "vip-year")
    worker.run_for_order(second.order_id)
    assert after_first is not None
    assert membership_expiry(jobs_app, user) == after_first + timedelta(days=365)


def test_article_and_goods_grants(jobs_app: App, rid: str) -> None:
    goods = f"mug-{rid}"
    add_product(jobs_app, goods, ProductKind.GOODS, stock=5)
    worker = make_worker(jobs_app)
    article = paid_order(jobs_app, f"u-{rid}", "article-deep-dive")
    shipped = paid_order(jobs_app, f"u-{rid}", goods)
    assert worker.run_due(100).claimed >= 2
    [access] = grants_for(jobs_app, article.order_id)
    assert (access.article_id, access.state) == ("article-deep-dive", "GRANTED")
    [parcel] = grants_for(jobs_app, shipped.order_id)
    assert parcel.state == "READY_TO_SHIP"


def test_article_grant_uses_the_attached_article(jobs_app: App, rid: str) -> None:
    order = paid_order(jobs_app, f"u-{rid}", "article-deep-dive")
    jobs_app.orders.attach_article(order.order_id, f"art-{rid}", order.version, Caller("bff"))
    make_worker(jobs_app).run_for_order(order.order_id)
    assert grants_for(jobs_app, order.order_id)[0].article_id == f"art-{rid}"


def test_eight_threads_grant_exactly_once(jobs_app: App, rid: str) -> None:
    users = [f"u-{rid}-{i}" for i in range(5)]
    orders = [paid_order(jobs_app, user, "vip-month") for user in users]
    worker = make_worker(jobs_app)
    calls = [order.order_id for order in orders for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = [p.outcome for p in pool.map(worker.run_for_order, calls)]
    assert outcomes.count(Outcome.SUCCEEDED) == len(orders)
    assert set(outcomes) <= {Outcome.SUCCEEDED, Outcome.NOT_DUE, Outcome.LOST}
    for order in orders:
        assert len(grants_for(jobs_app, order.order_id)) == 1
        expires = membership_expiry(jobs_app, order.user_id)
        assert expires is not None
        assert expires - order.created_at < timedelta(days=31)  # 30 days once, not 60
        with jobs_app.db.connection_context():
            succeeded = OrderEventRow.select().where(
                (OrderEventRow.order_id == order.order_id) & (OrderEventRow.to_value == "SUCCEEDED")
            )
            assert succeeded.count() == 1


def test_run_due_from_threads_claims_each_row_once(jobs_app: App, rid: str) -> None:
    orders = [paid_order(jobs_app, f"u-{rid}-{i}", "vip-month") for i in range(12)]
    worker = make_worker(jobs_app)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda _: worker.run_due(3), range(12)))
    for order in orders:
        assert jobs_app.orders.get_order(order.order_id).fulfilment is Fulfilment.SUCCEEDED
        assert len(grants_for(jobs_app, order.order_id)) == 1


def failing_handler(ctx: FulfilmentContext) -> str:
    raise RuntimeError(f"membership backend down for {ctx.order.user_id}")


def test_failing_handler_backs_off_then_fails_and_refunds_once(
    jobs_app: App, clock: MovableClock, rid: str
) -> None:
    order = paid_order(jobs_app, f"u-{rid}", "vip-month")
    policy = retry_policy(jobs_app.settings)
    worker = make_worker(jobs_app, handlers={"VIP_PLAN": failing_handler}, unit_random=lambda: 0.5)
    waits = []
    for attempt in range(1, policy.max_attempts):
        assert worker.run_for_order(order.order_id).outcome is Outcome.RETRY
        row = ledger_row(jobs_app, order.order_id)
        assert (row.attempts, row.status) == (attempt, "PENDING")
        assert "membership backend down" in row.last_error
        due = from_db_time(row.next_attempt_at)
        assert due is not None
        wait = due - clock()
        expected = min(30 * 2 ** (attempt - 1), 1800) * 1.05
        assert abs(wait.total_seconds() - expected) < 5
        assert worker.run_for_order(order.order_id).outcome is Outcome.NOT_DUE  # not before its time
        waits.append(wait)
        clock.move_to(due)
    assert sum(waits, timedelta()) >= timedelta(hours=1)
    assert worker.run_for_order(order.order_id).outcome is Outcome.FAILED
    failed = jobs_app.orders.get_order(order.order_id)
    assert failed.fulfilment is Fulfilment.FAILED
    assert "membership backend down" in failed.fulfilment_reason
    assert grants_for(jobs_app, order.order_id) == []
    assert membership_expiry(jobs_app, order.user_id) is None
    # FulfilmentFailed's reaction wrote the refund in the same transaction, for the refund job.
    [refund] = refunds_for(jobs_app, order.order_id)
    assert (refund.out_refund_no, refund.amount) == (compensation_refund_no(order.order_id), order.total_fee)
    assert (refund.status, refund.submitted) == ("PROCESSING", False)
    due = from_db_time(refund.next_poll_at)
    assert due is not None
    assert due <= clock()
    # Later passes never ask again: one refund row, with the deterministic number.
    clock.advance(timedelta(minutes=5))
    assert worker.run_due(100).claimed == 0 or worker.run_for_order(order.order_id).outcome is Outcome.NOT_DUE
    assert len(refunds_for(jobs_app, order.order_id)) == 1


def test_no_refund_when_auto_refund_is_off(jobs_app: App, rid: str) -> None:
    order = paid_order(jobs_app, f"u-{rid}", "vip-month")
    no_refunds = Policy(auto_refund_on_fulfilment_failure=False)
    worker = FulfilmentWorker(
        transactional(unit_of_work_factory(jobs_app.db), jobs_app.clock, no_refunds),
        jobs_app.clock,
        handlers={"VIP_PLAN": failing_handler},
        policy=RetryPolicy(max_attempts=1),
    )
    assert worker.run_for_order(order.order_id).outcome is Outcome.FAILED
    assert refunds_for(jobs_app, order.order_id) == []
    assert jobs_app.orders.get_order(order.order_id).fulfilment is Fulfilment.FAILED


def test_full_refund_takes_the_vip_days_back(jobs_app: App, rid: str) -> None:
    user = f"u-{rid}"
    worker = make_worker(jobs_app)
    keep = paid_order(jobs_app, user, "vip-month")
    worker.run_for_order(keep.order_id)
    kept_until = membership_expiry(jobs_app, user)
    order = paid_order(jobs_app, user, "vip-year")
    worker.run_for_order(order.order_id)
    out_refund_no = f"R{rid}"
    refunds = jobs_app.payments.refunds
    refunds.refund_order(order.order_id, out_refund_no, order.total_fee, "test", Caller("admin"))
    settled = {"out_refund_no": out_refund_no, "refund_status": "SUCCESS", "refund_id": f"50{rid}"}
    result = refunds.apply_refund(refund_report(settled), source="test")
    assert result.outcome == "applied"
    assert membership_expiry(jobs_app, user) == kept_until
    [grant] = grants_for(jobs_app, order.order_id)
    assert grant.state == GrantState.REVOKED
    assert grants_for(jobs_app, keep.order_id)[0].state == GrantState.GRANTED


def test_an_order_refunded_before_fulfilment_is_not_granted(jobs_app: App, rid: str) -> None:
    order = paid_order(jobs_app, f"u-{rid}", "vip-month")
    out_refund_no = f"R{rid}"
    refunds = jobs_app.payments.refunds
    refunds.refund_order(order.order_id, out_refund_no, order.total_fee, "test", Caller("admin"))
    refunds.apply_refund(
        refund_report({"out_refund_no": out_refund_no, "refund_status": "SUCCESS"}), source="test"
    )
    assert make_worker(jobs_app).run_for_order(order.order_id).outcome is Outcome.ABANDONED
    assert grants_for(jobs_app, order.order_id) == []
    assert membership_expiry(jobs_app, order.user_id) is None
    assert jobs_app.orders.get_order(order.order_id).fulfilment is Fulfilment.FAILED
    assert [r.out_refund_no for r in refunds_for(jobs_app, order.order_id)] == [out_refund_no]


def test_retry_policy_defaults_cover_an_hour() -> None:
    policy = RetryPolicy()
    total = sum((policy.delay(n, 0.0) for n in range(1, policy.max_attempts)), timedelta())
    assert policy.max_attempts >= 8
    assert total >= timedelta(hours=1)
    assert policy.delay(20, 1.0) <= timedelta(seconds=1800 * 1.1)


@pytest.mark.parametrize("unit_random", [0.0, 0.999])
def test_jitter_only_lengthens(unit_random: float) -> None:
    policy = RetryPolicy(base_s=10, max_s=100, jitter=0.2)
    assert timedelta(seconds=40) <= policy.delay(3, unit_random) <= timedelta(seconds=48)
