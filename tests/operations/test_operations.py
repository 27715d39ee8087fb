"""The operator's use cases on a real database (SQLite and PostgreSQL) with a fake gateway: HELD
resolutions, fulfilment retries, background work, and concurrent resolutions with real threads."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from server.adapters.admin_queries import AdminQueries
from server.adapters.admin_shapes import OrderFilter, decode_token
from server.adapters.recon_tables import ReconExceptionRow
from server.adapters.tables import FulfilmentRow
from server.adapters.unit_of_work import unit_of_work_factory
from server.app import App
from server.domain.errors import (
    DomainError,
    InvalidArgumentError,
    InvalidStateTransitionError,
    VersionConflictError,
)
from server.domain.operations import Resolution, operations_refund_no
from server.domain.order import CreateOrder, Fulfilment, OrderStatus
from server.service.context import Caller
from server.service.handlers import Policy, transactional
from server.service.operations import JobKind, OperationsService
from server.wxpay.wire import transaction_report
from tests.operations.helpers import held, operations_rows
from tests.support.fake_gateway import FakeGateway

BFF = Caller("bff", "t")
OPERATOR = Caller("admin", "req-ops-1")


@pytest.fixture
def ops(app: App) -> OperationsService:
    return app.operations  # as the composition root built it


def test_refunding_a_held_order_refunds_what_was_paid_and_audits_who_and_why(
    app: App, gateway: FakeGateway, ops: OperationsService, rid: str
) -> None:
    order = held(app, gateway, f"u-{rid}")
    result = ops.resolve_held(
        order.order_id, Resolution.REFUND, "customer paid the wrong amount", order.version, OPERATOR
    )
    assert result.outcome == "done"
    assert result.refund is not None
    assert (result.refund.out_refund_no, result.refund.amount) == (
        operations_refund_no(order.order_id),
        order.paid_fee,
    )
    assert result.order is not None
    assert result.order.fulfilment is Fulfilment.FAILED
    (row,) = operations_rows(app, order.order_id)
    assert (row.actor, row.request_id, row.from_value, row.to_value) == (
        "admin",
        "req-ops-1",
        "HELD",
        "REFUND",
    )
    assert "customer paid the wrong amount" in row.cause
    # Repeating it (a double click, a retry after a timeout) finds the same refund and adds nothing.
    again = ops.resolve_held(order.order_id, Resolution.REFUND, "again", 0, OPERATOR)
    assert again.outcome == "already_done"
    assert again.refund is not None
    assert again.refund.out_refund_no == result.refund.out_refund_no
    assert gateway.count("refund") == 1
    assert len(operations_rows(app, order.order_id)) == 1


def test_accepting_a_held_order_fulfils_it(
    app: App, gateway: FakeGateway, ops: OperationsService, rid: str
) -> None:
    order = held(app, gateway, f"u-{rid}")
    result = ops.resolve_held(
        order.order_id, Resolution.ACCEPT, "1 fen short, goodwill", order.version, OPERATOR
    )
    assert result.order is not None
    assert result.order.fulfilment is Fulfilment.SUCCEEDED
    assert app.catalogue.get_membership(f"u-{rid}").active
    with pytest.raises(InvalidStateTransitionError):
        ops.resolve_held(order.order_id, Resolution.REFUND, "changed my mind", 0, OPERATOR)


def test_a_stale_version_or_a_missing_reason_is_refused(
    app: App, gateway: FakeGateway, ops: OperationsService, rid: str
) -> None:
    order = held(app, gateway, f"u-{rid}")
    with pytest.raises(VersionConflictError) as conflict:
        ops.resolve_held(order.order_id, Resolution.ACCEPT, "why", order.version - 1, OPERATOR)
    assert conflict.value.metadata["current_version"] == str(order.version)
    with pytest.raises(InvalidArgumentError):
        ops.resolve_held(order.order_id, Resolution.ACCEPT, "   ", order.version, OPERATOR)
    assert operations_rows(app, order.order_id) == []


@pytest.mark.parametrize("mix", ["same", "opposite"])
def test_concurrent_resolutions_leave_exactly_one_outcome(
    app: App, gateway: FakeGateway, ops: OperationsService, rid: str, mix: str
) -> None:
    order = held(app, gateway, f"u-{rid}-{mix}")
    threads = 8
    start = threading.Barrier(threads)

    def resolve(i: int) -> str:
        resolution = Resolution.REFUND if mix == "same" or i % 2 else Resolution.ACCEPT
        start.wait()
        try:
            return ops.resolve_held(
                order.order_id, resolution, f"op {i}", order.version, Caller("admin", f"r{i}")
            ).action
        except DomainError as error:
            return error.reason

    with ThreadPoolExecutor(threads) as pool:
        outcomes = Counter(pool.map(resolve, range(threads)))
    decided = [row.to_value for row in operations_rows(app, order.order_id)]
    assert len(decided) == 1  # one audited decision, whatever the interleaving
    refunds = {body["out_refund_no"] for name, body in gateway.calls if name == "refund"}
    if decided == ["ACCEPTED"]:
        assert refunds == set()
        assert outcomes["resolve_accept"] == 1
    else:
        assert refunds == {operations_refund_no(order.order_id)}
        assert outcomes["resolve_accept"] == 0
    # A loser learns why (or, past the refund's bounded retry under this contention, TRANSIENT: retry).
    assert set(outcomes) <= {
        "resolve_refund",
        "resolve_accept",
        "VERSION_CONFLICT",
        "INVALID_STATE_TRANSITION",
        "TRANSIENT",
    }


def idle_operations(app: App) -> OperationsService:
    """The operator's use cases over a unit of work whose commits fulfil nothing (no after-commit worker):
    an accepted order stays PENDING for the test to move on by hand."""
    assert app.payments is not None
    unattended = transactional(unit_of_work_factory(app.db), app.clock, Policy())
    return OperationsService(unattended, app.clock, refunds=app.payments.refunds)


def test_retrying_a_failed_fulfilment_runs_it_again(
    app: App, gateway: FakeGateway, ops: OperationsService, rid: str
) -> None:
    order = held(app, gateway, f"u-{rid}")
    idle = idle_operations(app)
    idle.resolve_held(order.order_id, Resolution.ACCEPT, "accept", order.version, OPERATOR)
    # Make it FAILED as the worker would after its last attempt, without the automatic refund.
    with app.uow() as uow:
        current = uow.orders.get(order.order_id)
        assert current is not None
        uow.orders.save(current, replace(current, fulfilment=Fulfilment.FAILED, fulfilment_reason="boom"))
        FulfilmentRow.update(status="FAILED").where(FulfilmentRow.order_id == order.order_id).execute()
    failed = app.orders.get_order(order.order_id)
    result = ops.retry_fulfilment(order.order_id, "handler fixed", failed.version, OPERATOR)
    assert result.order is not None
    assert result.order.fulfilment is Fulfilment.SUCCEEDED
    with pytest.raises(InvalidStateTransitionError):
        ops.retry_fulfilment(order.order_id, "twice", 0, OPERATOR)


def test_a_failed_fulfilment_being_refunded_cannot_be_retried(
    app: App, gateway: FakeGateway, ops: OperationsService, rid: str
) -> None:
    order = held(app, gateway, f"u-{rid}")
    ops.resolve_held(order.order_id, Resolution.REFUND, "refund", order.version, OPERATOR)
    with pytest.raises(InvalidStateTransitionError):
        ops.retry_fulfilment(order.order_id, "no", 0, OPERATOR)


def test_refund_polls_are_retried_now_and_revoked(
    app: App, gateway: FakeGateway, ops: OperationsService, rid: str
) -> None:
    order = held(app, gateway, f"u-{rid}")
    refund = ops.resolve_held(order.order_id, Resolution.REFUND, "refund", order.version, OPERATOR).refund
    assert refund is not None
    polled = ops.retry_job(JobKind.REFUND_POLL, refund.out_refund_no, "check now", OPERATOR)
    assert gateway.count("query_refund") == 1
    assert polled.refund is not None
    assert polled.refund.status.value == "PROCESSING"
    stopped = ops.revoke_job(
        JobKind.REFUND_POLL, refund.out_refund_no, "WeChat support ticket open", OPERATOR
    )
    assert stopped.outcome == "done"
    assert (
        ops.revoke_job(JobKind.REFUND_POLL, refund.out_refund_no, "again", OPERATOR).outcome == "already_done"
    )
    queries = AdminQueries(app.db)
    assert refund.out_refund_no in {
        r.out_refund_no for r in queries.list_refunds(stuck=True, now=app.clock())
    }
    actions = [row.to_value for row in operations_rows(app, order.order_id)]
    assert actions == ["REFUND", "RETRY_REFUND_POLL", "REVOKE_REFUND_POLL"]


def test_admin_queries_filter_and_page_across_users(app: App, gateway: FakeGateway, rid: str) -> None:
    orders = [held(app, gateway, f"u-{rid}-{i}") for i in range(5)]
    queries = AdminQueries(app.db)
    mine = {o.order_id for o in orders}
    seen: list[str] = []
    token = ""
    while True:
        page = queries.list_orders(OrderFilter(fulfilment="HELD", product_id="vip-month"), 2, token)
        seen += [o.order_id for o in page.orders if o.order_id in mine]
        assert all(o.fulfilment is Fulfilment.HELD for o in page.orders)
        if not page.next_page_token:
            break
        decode_token(page.next_page_token)
        token = page.next_page_token
    assert seen == [o.order_id for o in reversed(orders)]  # newest first, each exactly once
    by_text = queries.list_orders(OrderFilter(text=orders[0].out_trade_no), 10)
    assert [o.order_id for o in by_text.orders] == [orders[0].order_id]
    attention = queries.needs_attention(app.clock(), limit=200)
    assert mine <= {o.order_id for o in attention.held}
    story = queries.order_story(orders[0].order_id)
    assert story is not None
    assert [e.field for e in story.events][:4] == ["status", "prepay", "status", "fulfilment"]
    assert story.order.status is OrderStatus.PAID
    with pytest.raises(InvalidArgumentError):
        queries.list_orders(OrderFilter(), 10, "not-a-token!")


def test_a_payment_after_close_already_refunded_has_nothing_left_to_resolve(
    app: App, gateway: FakeGateway, ops: OperationsService, rid: str
) -> None:
    order = app.orders.create_order(CreateOrder("k", f"late-{rid}", "vip-month", 1), BFF).order
    assert app.payments is not None
    assert app.payments is not None
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    app.orders.close_order(order.order_id, BFF)
    late = app.payments.payments.apply_transaction(
        transaction_report(gateway.pay(order.out_trade_no)), source="test"
    ).order
    assert late is not None
    assert (late.status, late.fulfilment) == (OrderStatus.CLOSED, Fulfilment.HELD)
    app.payments.refunds.refund_order(
        order.order_id, f"PC{order.order_id}", late.paid_fee, "paid after close", BFF
    )
    with pytest.raises(InvalidStateTransitionError):
        ops.resolve_held(order.order_id, Resolution.ACCEPT, "no", 0, OPERATOR)
    current = app.orders.get_order(order.order_id)  # the automatic refund moved its version on
    with pytest.raises(InvalidStateTransitionError, match="already refunded or on its way back"):
        ops.resolve_held(order.order_id, Resolution.REFUND, "already refunded", current.version, OPERATOR)
    assert app.orders.get_order(order.order_id).fulfilment is Fulfilment.HELD  # decided; left alone
    assert order.order_id not in {o.order_id for o in AdminQueries(app.db).needs_attention(app.clock()).held}
    assert {body["out_refund_no"] for name, body in gateway.calls if name == "refund"} == {
        f"PC{order.order_id}"
    }


def test_open_recon_exceptions_need_attention(app: App, rid: str) -> None:
    queries = AdminQueries(app.db)
    now = app.clock()
    with app.db.connection_context():
        common = {"bill_date": "2026-01-01", "created_at": now, "updated_at": now}
        opened = ReconExceptionRow.create(
            kind="MISSING_LOCAL", out_trade_no=f"OPEN{rid}", status="OPEN", **common
        )
        ReconExceptionRow.create(
            kind="MISSING_REMOTE", out_trade_no=f"DONE{rid}", status="RESOLVED", **common
        )
    rows = queries.recon_exceptions(limit=1000)
    mine = [r for r in rows if rid in r["out_trade_no"]]
    assert [(r["id"], r["kind"]) for r in mine] == [(opened.id, "MISSING_LOCAL")]
    assert queries.needs_attention(app.clock()).counts["recon"] >= 1


def test_a_retry_in_flight_does_not_re_arm_polling_an_operator_revoked_meanwhile(
    app: App, gateway: FakeGateway, ops: OperationsService, rid: str
) -> None:
    """The 2026-12 audit's L5: the retry's reschedule overwrote a revoke committed during its WeChat call."""
    order = held(app, gateway, f"u-{rid}")
    refund = ops.resolve_held(order.order_id, Resolution.REFUND, "refund", order.version, OPERATOR).refund
    assert refund is not None
    revoked: list[str] = []
    gateway.during_next["query_refund"] = lambda: revoked.append(
        ops.revoke_job(
            JobKind.REFUND_POLL, refund.out_refund_no, "WeChat support ticket open", OPERATOR
        ).outcome
    )
    ops.retry_job(JobKind.REFUND_POLL, refund.out_refund_no, "check now", OPERATOR)
    assert revoked == ["done"]
    stuck = AdminQueries(app.db).list_refunds(stuck=True, now=app.clock())
    assert refund.out_refund_no in {r.out_refund_no for r in stuck}  # polling stays stopped
    assert (
        ops.revoke_job(JobKind.REFUND_POLL, refund.out_refund_no, "again", OPERATOR).outcome == "already_done"
    )


def test_fulfilment_jobs_are_made_due_revoked_and_retried(
    app: App, gateway: FakeGateway, ops: OperationsService, rid: str
) -> None:
    order = held(app, gateway, f"job-{rid}")
    idle = idle_operations(app)
    idle.resolve_held(order.order_id, Resolution.ACCEPT, "accept", order.version, OPERATOR)
    assert idle.retry_job(JobKind.FULFILMENT, order.order_id, "now please", OPERATOR).outcome == "done"
    revoked = ops.revoke_job(JobKind.FULFILMENT, order.order_id, "customer cancelled", OPERATOR)
    assert revoked.order is not None
    assert (revoked.order.fulfilment, revoked.order.fulfilment_reason) == (
        Fulfilment.FAILED,
        "REVOKED: customer cancelled",
    )
    assert ops.revoke_job(JobKind.FULFILMENT, order.order_id, "again", OPERATOR).outcome == "already_done"
    retried = ops.retry_job(JobKind.FULFILMENT, order.order_id, "changed their mind", OPERATOR)
    assert retried.order is not None
    assert retried.order.fulfilment is Fulfilment.SUCCEEDED
    actions = [row.to_value for row in operations_rows(app, order.order_id)]
    assert actions == ["ACCEPTED", "RETRY_FULFILMENT_JOB", "REVOKE", "RETRY"]
