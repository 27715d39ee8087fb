"""The periodic tasks on SQLite and PostgreSQL: expiry, reconciliation and refund polling claim each
row once under concurrency and call the real use cases (WeChat Pay is unreachable here)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from server.adapters.tables import OrderEventRow, OrderRow, ProductRow, RefundRow
from server.adapters.times import from_db_time, to_db_time
from server.app import App
from server.domain.catalogue import ProductKind
from server.domain.order import OrderStatus
from server.jobs.tasks import ExpiryTask, NotificationTask, ReconcileTask, RefundPollTask
from server.service.context import Caller
from tests.jobs.helpers import MovableClock, add_product, paid_order, unpaid_order


def stock_of(app: App, product_id: str) -> int | None:
    with app.db.connection_context():
        return ProductRow.get(ProductRow.product_id == product_id).stock


def test_expiry_closes_overdue_orders_once_and_releases_stock(
    jobs_app: App, clock: MovableClock, rid: str
) -> None:
    product = f"p-{rid}"
    add_product(jobs_app, product, ProductKind.GOODS, stock=10)
    overdue = [unpaid_order(jobs_app, f"u-{rid}-{i}", product, 2) for i in range(3)]
    clock.advance(timedelta(seconds=jobs_app.settings.order_ttl_s + 60))
    fresh = unpaid_order(jobs_app, f"v-{rid}", product, 1)
    task = ExpiryTask(jobs_app.uow, jobs_app.clock, jobs_app.orders)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: task.run_once(), range(4)))
    assert sum(r.errors for r in results) == 0
    assert stock_of(jobs_app, product) == 10 - 1
    for order in overdue:
        assert jobs_app.orders.get_order(order.order_id).status is OrderStatus.CLOSED
        with jobs_app.db.connection_context():
            closes = OrderEventRow.select().where(
                (OrderEventRow.order_id == order.order_id) & (OrderEventRow.to_value == "CLOSED")
            )
            assert [(e.actor, e.cause) for e in closes] == [("job:expiry", "closed")]
    assert jobs_app.orders.get_order(fresh.order_id).status is OrderStatus.UNPAID
    assert task.oldest_due() is None


def test_expiry_skips_orders_paid_in_the_meantime(jobs_app: App, clock: MovableClock, rid: str) -> None:
    order = paid_order(jobs_app, f"u-{rid}", "vip-month")
    clock.advance(timedelta(seconds=jobs_app.settings.order_ttl_s + 60))
    task = ExpiryTask(jobs_app.uow, jobs_app.clock, jobs_app.orders)
    task.run_once()
    assert jobs_app.orders.get_order(order.order_id).status is OrderStatus.PAID


def _with_prepay(app: App, order_id: str, next_sync_in: timedelta) -> None:
    with app.db.connection_context():
        OrderRow.update(
            prepay_id=f"wx{order_id[-20:]}", next_sync_at=to_db_time(app.clock() + next_sync_in)
        ).where(OrderRow.order_id == order_id).execute()


def test_sync_claims_are_disjoint_across_threads(jobs_app: App, rid: str) -> None:
    orders = [unpaid_order(jobs_app, f"u-{rid}-{i}", "vip-month") for i in range(30)]
    for order in orders:
        _with_prepay(jobs_app, order.order_id, timedelta(seconds=-1))

    def claim(_: int) -> list[str]:
        with jobs_app.uow() as uow:
            return uow.claims.claim_due_syncs(jobs_app.clock(), 4, timedelta(seconds=60))

    with ThreadPoolExecutor(max_workers=8) as pool:
        claimed = [order_id for batch in pool.map(claim, range(16)) for order_id in batch]
    mine = [order_id for order_id in claimed if order_id in {o.order_id for o in orders}]
    assert Counter(mine).most_common(1)[0][1] == 1  # nobody claimed twice
    assert set(mine) == {o.order_id for o in orders}


def test_reconciler_queries_then_backs_off(jobs_app: App, rid: str) -> None:
    order = unpaid_order(jobs_app, f"u-{rid}", "vip-quarter")
    _with_prepay(jobs_app, order.order_id, timedelta(seconds=-1))
    task = ReconcileTask(jobs_app.uow, jobs_app.clock, jobs_app.payments.payments)
    result = task.run_once()
    assert result.items >= 1
    assert result.errors >= 1  # WeChat Pay is unreachable: deferred, not lost
    with jobs_app.db.connection_context():
        row = OrderRow.get(OrderRow.order_id == order.order_id)
    next_sync = from_db_time(row.next_sync_at)
    assert next_sync is not None
    schedule = jobs_app.settings.reconcile_schedule_s
    assert row.sync_attempts == 1
    assert abs((next_sync - jobs_app.clock()).total_seconds() - schedule[1]) < 5
    assert task.run_once().items == 0  # not due again until then


def test_refund_poller_claims_each_refund_once(jobs_app: App, clock: MovableClock, rid: str) -> None:
    refunds = jobs_app.payments.refunds
    refund_nos = []
    for i in range(4):
        order = paid_order(jobs_app, f"u-{rid}-{i}", "vip-month")
        out_refund_no = f"R{rid}{i}"
        refunds.refund_order(order.order_id, out_refund_no, order.total_fee, "test", Caller("admin"))
        refund_nos.append(out_refund_no)
    clock.advance(timedelta(seconds=30))
    synced: list[str] = []

    class Recorder:
        def sync_refund(self, out_refund_no: str, caller: Caller) -> object:
            synced.append(out_refund_no)
            return refunds.sync_refund(out_refund_no, caller)

    task = RefundPollTask(jobs_app.uow, jobs_app.clock, Recorder())
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: task.run_once(), range(4)))
    assert sorted(no for no in synced if no in refund_nos) == sorted(refund_nos)
    with jobs_app.db.connection_context():
        rows = RefundRow.select().where(RefundRow.out_refund_no.in_(refund_nos))
        assert {row.status for row in rows} == {"PROCESSING"}  # still unsubmitted, rescheduled
        next_polls = [from_db_time(row.next_poll_at) for row in rows]
    now = jobs_app.clock()
    assert all(at is not None and at > now for at in next_polls)


def test_notification_task_passes_its_limits() -> None:
    seen: list[tuple[float, int]] = []

    class Service:
        def reprocess_pending(self, older_than_s: float, limit: int) -> int:
            seen.append((older_than_s, limit))
            return limit

    result = NotificationTask(Service(), older_than_s=30, limit=7).run_once()
    assert (result.items, result.more) == (7, True)
    assert seen == [(30, 7)]


def test_expiry_keeps_an_order_open_while_wechat_cannot_be_asked(
    jobs_app: App, clock: MovableClock, rid: str
) -> None:
    product = f"p-{rid}"
    add_product(jobs_app, product, ProductKind.GOODS, stock=5)
    order = unpaid_order(jobs_app, f"u-{rid}", product, 2)
    _with_prepay(jobs_app, order.order_id, timedelta(hours=5))
    clock.advance(timedelta(seconds=jobs_app.settings.order_ttl_s + 60))
    task = ExpiryTask(jobs_app.uow, jobs_app.clock, jobs_app.orders)
    assert task.oldest_due() is not None
    first = task.run_once()  # (earlier tests left overdue orders with prepays too)
    assert first.items >= 1
    assert first.errors == first.items  # WeChat unreachable: never close locally first
    assert jobs_app.orders.get_order(order.order_id).status is OrderStatus.UNPAID
    assert stock_of(jobs_app, product) == 3
    assert task.run_once().items == 0  # leased: not hammered every run
    clock.advance(timedelta(seconds=61))
    assert task.run_once().items == first.items  # and tried again after the lease
