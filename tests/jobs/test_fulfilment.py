"""Fulfilment on SQLite and PostgreSQL: handlers by kind, exactly once under concurrency, backoff,
FAILED plus one automatic refund, and grants taken back by a full refund."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from server.adapters.repositories import from_db_time
from server.adapters.tables import OrderEventRow
from server.app import App
from server.domain.catalogue import ProductKind
from server.domain.order import Fulfilment
from server.service.context import Caller
from server.service.fulfilment import (
    FulfilmentContext,
    GrantState,
    LedgerStatus,
    Outcome,
    RetryPolicy,
    compensation_refund_no,
)
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
    assert make_worker(jobs_app).run_for_order(order.order_id) is Outcome.SUCCEEDED
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
    assert worker.run_due(100) >= 2
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
        outcomes = list(pool.map(worker.run_for_order, calls))
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


class RecordingRefunder:
    """The real RefundService, with a record of every request (and optionally a first-call failure)."""

    def __init__(self, app: App, fail_first: bool = False) -> None:
        assert app.refunds is not None
        self._refunds = app.refunds
        self.calls: list[tuple[str, str, int]] = []
        self._fail_next = fail_first

    def refund_order(
        self, order_id: str, out_refund_no: str, amount: int, reason: str, caller: Caller
    ) -> object:
        self.calls.append((order_id, out_refund_no, amount))
        if self._fail_next:
            self._fail_next = False
            raise ConnectionError("database went away")
        return self._refunds.refund_order(order_id, out_refund_no, amount, reason, caller)


def failing_handler(ctx: FulfilmentContext) -> str:
    raise RuntimeError(f"membership backend down for {ctx.order.user_id}")


def test_failing_handler_backs_off_then_fails_and_refunds_once(
    jobs_app: App, clock: MovableClock, rid: str
) -> None:
    order = paid_order(jobs_app, f"u-{rid}", "vip-month")
    refunder = RecordingRefunder(jobs_app)
    policy = RetryPolicy.from_settings(jobs_app.settings)
    worker = make_worker(
        jobs_app, handlers={"VIP_PLAN": failing_handler}, refunder=refunder, unit_random=lambda: 0.5
    )
    waits = []
    for attempt in range(1, policy.max_attempts):
        assert worker.run_for_order(order.order_id) is Outcome.RETRY
        row = ledger_row(jobs_app, order.order_id)
        assert (row.attempts, row.status) == (attempt, "PENDING")
        assert "membership backend down" in row.last_error
        due = from_db_time(row.next_attempt_at)
        assert due is not None
        wait = due - clock()
        expected = min(30 * 2 ** (attempt - 1), 1800) * 1.05
        assert abs(wait.total_seconds() - expected) < 5
        assert worker.run_for_order(order.order_id) is Outcome.NOT_DUE  # not before its time
        waits.append(wait)
        clock.move_to(due)
    assert sum(waits, timedelta()) >= timedelta(hours=1)
    assert worker.run_for_order(order.order_id) is Outcome.FAILED
    failed = jobs_app.orders.get_order(order.order_id)
    assert failed.fulfilment is Fulfilment.FAILED
    assert "membership backend down" in failed.fulfilment_reason
    assert grants_for(jobs_app, order.order_id) == []
    assert membership_expiry(jobs_app, order.user_id) is None
    assert refunder.calls == [(order.order_id, compensation_refund_no(order.order_id), order.total_fee)]
    # Later passes (worker, sweep) never ask again: one refund row, with the deterministic number.
    clock.advance(timedelta(minutes=5))
    assert worker.run_due(100) == 0 or worker.run_for_order(order.order_id) is Outcome.NOT_DUE
    worker.compensate_due(100)
    [refund] = refunds_for(jobs_app, order.order_id)
    assert (refund.out_refund_no, refund.amount) == (compensation_refund_no(order.order_id), order.total_fee)
    assert len(refunder.calls) == 1


def test_a_lost_refund_request_is_swept_up(jobs_app: App, clock: MovableClock, rid: str) -> None:
    order = paid_order(jobs_app, f"u-{rid}", "vip-month")
    refunder = RecordingRefunder(jobs_app, fail_first=True)
    worker = make_worker(
        jobs_app,
        handlers={"VIP_PLAN": failing_handler},
        refunder=refunder,
        policy=RetryPolicy(max_attempts=1),
    )
    assert worker.run_for_order(order.order_id) is Outcome.FAILED
    assert refunds_for(jobs_app, order.order_id) == []  # the request died before the row was written
    worker.compensate_due(100)
    assert len(refunder.calls) == 1  # a fresh failure is left to the worker that failed it
    clock.advance(timedelta(minutes=2))
    worker.compensate_due(100)
    worker.compensate_due(100)
    assert len(refunder.calls) == 2
    assert [r.out_refund_no for r in refunds_for(jobs_app, order.order_id)] == [
        compensation_refund_no(order.order_id)
    ]


def test_no_refund_when_auto_refund_is_off(jobs_app: App, rid: str) -> None:
    order = paid_order(jobs_app, f"u-{rid}", "vip-month")
    refunder = RecordingRefunder(jobs_app)
    worker = make_worker(
        jobs_app,
        handlers={"VIP_PLAN": failing_handler},
        refunder=refunder,
        policy=RetryPolicy(max_attempts=1),
        auto_refund=False,
    )
    assert worker.run_for_order(order.order_id) is Outcome.FAILED
    assert worker.compensate_due(100) == 0
    assert refunder.calls == []
    assert jobs_app.orders.get_order(order.order_id).fulfilment is Fulfilment.FAILED


def test_full_refund_takes_the_vip_days_back(jobs_app: App, rid: str) -> None:
    assert jobs_app.refunds is not None
    user = f"u-{rid}"
    worker = make_worker(jobs_app)
    keep = paid_order(jobs_app, user, "vip-month")
    worker.run_for_order(keep.order_id)
    kept_until = membership_expiry(jobs_app, user)
    order = paid_order(jobs_app, user, "vip-year")
    worker.run_for_order(order.order_id)
    original, jobs_app.refunds.revoke_grants = jobs_app.refunds.revoke_grants, worker.revoke_grants
    try:
        out_refund_no = f"R{rid}"
        jobs_app.refunds.refund_order(order.order_id, out_refund_no, order.total_fee, "test", Caller("admin"))
        result = jobs_app.refunds.apply_refund(
            {"out_refund_no": out_refund_no, "refund_status": "SUCCESS", "refund_id": f"50{rid}"},
            source="test",
        )
    finally:
        jobs_app.refunds.revoke_grants = original
    assert result.outcome == "applied"
    assert membership_expiry(jobs_app, user) == kept_until
    [grant] = grants_for(jobs_app, order.order_id)
    assert grant.state == GrantState.REVOKED
    assert grants_for(jobs_app, keep.order_id)[0].state == GrantState.GRANTED


def test_an_order_refunded_before_fulfilment_is_not_granted(jobs_app: App, rid: str) -> None:
    assert jobs_app.refunds is not None
    order = paid_order(jobs_app, f"u-{rid}", "vip-month")
    out_refund_no = f"R{rid}"
    jobs_app.refunds.refund_order(order.order_id, out_refund_no, order.total_fee, "test", Caller("admin"))
    jobs_app.refunds.apply_refund({"out_refund_no": out_refund_no, "refund_status": "SUCCESS"}, source="test")
    refunder = RecordingRefunder(jobs_app)
    assert make_worker(jobs_app, refunder=refunder).run_for_order(order.order_id) is Outcome.ABANDONED
    assert grants_for(jobs_app, order.order_id) == []
    assert membership_expiry(jobs_app, order.user_id) is None
    assert jobs_app.orders.get_order(order.order_id).fulfilment is Fulfilment.FAILED
    assert refunder.calls == []


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
