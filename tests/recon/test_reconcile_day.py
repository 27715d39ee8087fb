"""A day reconciled end to end against the sandbox's bills, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from orderpay.v1 import events_pb2
from server.adapters.recon_tables import ReconExceptionRow, ReconFileRow, ReconLineRow, ReconRunRow
from server.adapters.tables import OrderEventRow
from server.domain.errors import ProviderUnavailableError
from server.domain.feed import FeedFilter, FeedType
from server.domain.order import OrderStatus
from server.domain.reconciliation import ExceptionKind, ExceptionStatus
from server.domain.refund import RefundStatus
from server.metrics import REGISTRY
from server.service.context import Caller
from server.service.recon_ports import DayReport
from server.service.reconciliation import BillNotReadyError
from tests.support.recon_world import World

MakeWorld = Callable[..., World]
ADMIN = Caller("admin", "req-1")


def metric(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def kinds(report: DayReport) -> list[tuple[str, str]]:
    return sorted((e.kind.value, e.status.value) for e in report.exceptions)


def test_a_busy_day_reconciles_to_zero_exceptions(make_world: MakeWorld) -> None:
    world = make_world(hh=7, mm=30)  # 07:30 Beijing is 23:30 UTC the day before: the UTC/UTC+8 cut
    day = world.day
    early = world.paid()
    world.at(day, 12, 0)
    partial = world.paid()
    world.refund(partial, 100)
    full = world.paid()
    world.refund(full, full.total_fee)
    late = world.prepaid()  # closed locally while WeChat still takes the money (the close raced it)
    world.app.orders.close_local(late.order_id, ADMIN)
    world.pay_at_wechat(late)
    assert world.payments.sync_payment(late.order_id, ADMIN).status is OrderStatus.CLOSED
    world.settled(f"PC{late.order_id}")  # the automatic refund of the late payment
    world.at(day, 23, 59, 59)
    last = world.paid()  # paid in the last second of the day
    world.at(day + timedelta(days=1), 0, 0, 0.5)  # orderpay's clock reads 23:59:59.5 of the day
    crossing = world.refund(early, 200)  # written on day D, accepted by WeChat on D+1

    world.open_bills(day)
    report = world.recon.run_day(day)
    assert report.summary.status == "DONE"
    assert report.exceptions == []
    assert report.clean
    assert report.summary.bill_rows == 8  # 5 payments + 3 refunds; the crossing refund is D+1's
    assert report.summary.matched == 8
    assert report.summary.deferred == 1  # the crossing refund waits for D+1's bill
    assert report.summary.totals.fund_income_fen == report.summary.totals.payments_fen
    assert last.transaction_id

    world.open_bills(day + timedelta(days=1))
    next_day = world.recon.run_day(day + timedelta(days=1))
    assert (next_day.summary.bill_rows, next_day.summary.matched, next_day.exceptions) == (1, 1, [])
    assert crossing.out_refund_no in world.store.line_keys(day + timedelta(days=1), "default")


def test_bill_omit_is_missing_remote(make_world: MakeWorld) -> None:
    world = make_world()
    kept, omitted = world.paid(), world.paid()
    world.control("POST", f"orders/{omitted.out_trade_no}/faults", {"bill_omit": True})
    world.open_bills(world.day)
    with capture_logs() as logs:
        report = world.recon.run_day(world.day)
    critical = [line for line in logs if line["event"] == "recon.critical"]
    assert [(c["log_level"], c["kind"], c["out_trade_no"]) for c in critical] == [
        ("error", "MISSING_REMOTE", omitted.out_trade_no)
    ]
    with world.app.read():
        open_now = world.store.open_counts()[("default", ExceptionKind.MISSING_REMOTE)]
    assert metric("orderpay_recon_exceptions", account="default", kind="MISSING_REMOTE") == open_now >= 1
    assert metric("orderpay_recon_last_reconciled_day", account="default") is not None
    assert kinds(report) == [("MISSING_REMOTE", "OPEN")]
    (exception,) = report.exceptions
    assert (exception.out_trade_no, exception.local_fen, exception.remote_fen) == (
        omitted.out_trade_no,
        omitted.paid_fee,
        0,
    )
    assert report.summary.matched == 1
    assert not report.clean
    assert kept.transaction_id


def test_amount_delta_is_amount_mismatch(make_world: MakeWorld) -> None:
    world = make_world()
    drifted = world.paid()
    world.control("POST", f"orders/{drifted.out_trade_no}/faults", {"bill_amount_delta_fen": 7})
    world.open_bills(world.day)
    report = world.recon.run_day(world.day)
    assert kinds(report) == [("AMOUNT_MISMATCH", "OPEN")]
    (exception,) = report.exceptions
    assert (exception.local_fen, exception.remote_fen) == (drifted.paid_fee, drifted.paid_fee + 7)


def test_a_payment_nobody_told_orderpay_about_is_repaired(make_world: MakeWorld) -> None:
    world = make_world()
    silent = world.prepaid()
    world.pay_at_wechat(silent)  # notifications are dropped and the reconciler has not run
    world.open_bills(world.day)
    report = world.recon.run_day(world.day)
    assert kinds(report) == [("MISSING_LOCAL", "REPAIRED")]
    assert report.clean
    assert report.summary.matched == 1
    assert world.app.orders.get_order(silent.order_id).status is OrderStatus.PAID


def test_a_refund_made_outside_orderpay_is_refund_missing_local(make_world: MakeWorld) -> None:
    world = make_world()
    order = world.paid()
    body = {
        "out_trade_no": order.out_trade_no,
        "out_refund_no": "PORTAL" + order.order_id[-10:],
        "amount": {"refund": 100, "total": order.total_fee, "currency": "CNY"},
    }
    assert world.merchant.call("POST", "/v3/refund/domestic/refunds", body).status == 200
    world.open_bills(world.day)
    report = world.recon.run_day(world.day)
    assert kinds(report) == [("REFUND_MISSING_LOCAL", "OPEN")]
    (exception,) = report.exceptions
    assert (exception.out_refund_no, exception.remote_fen) == (body["out_refund_no"], 100)


def test_a_refund_settled_at_wechat_is_settled_here_too(make_world: MakeWorld) -> None:
    world = make_world(refund_settle_delay_s=None)  # refunds stay PROCESSING until a control call
    order = world.paid()
    refund = world.refunds.refund_order(order.order_id, "RS" + order.order_id[-12:], 300, "test", ADMIN)
    world.control("POST", f"refunds/{refund.out_refund_no}/settle", {"status": "SUCCESS"})  # not notified
    assert world.refunds.get_refund(refund.out_refund_no, False, ADMIN).status is RefundStatus.PROCESSING
    world.open_bills(world.day)
    report = world.recon.run_day(world.day)
    assert (report.summary.matched, report.exceptions) == (2, [])
    assert world.refunds.get_refund(refund.out_refund_no, False, ADMIN).status is RefundStatus.SUCCESS


def test_the_same_day_twice_changes_nothing(make_world: MakeWorld) -> None:
    world = make_world()
    world.paid()
    silent = world.prepaid()
    world.pay_at_wechat(silent)
    omitted = world.paid()
    world.control("POST", f"orders/{omitted.out_trade_no}/faults", {"bill_omit": True})
    world.open_bills(world.day)
    first = world.recon.run_day(world.day)
    tables = snapshot(world)
    second = world.recon.run_day(world.day)
    assert snapshot(world) == tables
    assert second.exceptions == first.exceptions
    assert (second.summary.matched, second.repaired) == (first.summary.matched, first.repaired) == (2, 1)


def snapshot(world: World) -> tuple[object, ...]:
    key = world.day.isoformat()
    with world.app.read():
        return (
            list(
                ReconLineRow.select().where(ReconLineRow.bill_date == key).order_by(ReconLineRow.id).dicts()
            ),
            list(
                ReconExceptionRow.select()
                .where(ReconExceptionRow.bill_date == key)
                .order_by(ReconExceptionRow.id)
                .dicts()
            ),
            [(r.sha1, r.size) for r in ReconFileRow.select().where(ReconFileRow.bill_date == key)],
            ReconRunRow.get(ReconRunRow.bill_date == key).matched,
        )


def test_hash_mismatch_is_refetched_then_refused_unparsed(make_world: MakeWorld) -> None:
    world = make_world()
    world.paid()
    world.open_bills(world.day)
    world.control("PUT", "config", {"bill_hash_mismatch": True})
    with pytest.raises(ProviderUnavailableError) as raised:
        world.recon.run_day(world.day)
    assert raised.value.metadata["provider_code"] == "BILL_HASH_MISMATCH"
    assert world.store.line_keys(world.day, "default") == set()
    assert world.recon.report(world.day).summary.status == "NOT_RUN"
    world.control("PUT", "config", {"bill_hash_mismatch": False})
    assert world.recon.run_day(world.day).clean


def test_bom_and_crlf_are_read(make_world: MakeWorld) -> None:
    world = make_world()
    order = world.paid()
    world.refund(order, 50)
    world.open_bills(world.day)
    world.control("PUT", "config", {"bill_bom": True, "bill_crlf": True})
    report = world.recon.run_day(world.day)
    assert (report.summary.bill_rows, report.summary.matched, report.exceptions) == (2, 2, [])


def test_before_ten_the_bill_is_not_ready_and_the_day_stays_open(make_world: MakeWorld) -> None:
    world = make_world()
    world.paid()
    world.at(world.day + timedelta(days=1), 9, 59)
    with pytest.raises(BillNotReadyError):
        world.recon.run_day(world.day)
    assert world.recon.report(world.day).summary.status == "NOT_RUN"


def test_a_day_without_trades_is_empty(make_world: MakeWorld) -> None:
    world = make_world()
    world.open_bills(world.day)
    report = world.recon.run_day(world.day)
    assert (report.summary.status, report.exceptions, report.clean) == ("EMPTY", [], True)


def test_resolving_an_exception_is_audited(make_world: MakeWorld) -> None:
    world = make_world()
    omitted = world.paid()
    world.control("POST", f"orders/{omitted.out_trade_no}/faults", {"bill_omit": True})
    world.open_bills(world.day)
    (exception,) = world.recon.run_day(world.day).exceptions
    resolved = world.recon.resolve(exception.id, "WeChat confirmed by ticket 42", ADMIN)
    assert resolved.status is ExceptionStatus.RESOLVED
    assert world.recon.report(world.day).clean
    assert world.recon.open_exceptions(world.day) == []
    with world.app.read():
        row = OrderEventRow.get(
            OrderEventRow.order_id == omitted.order_id, OrderEventRow.field == "recon_exception"
        )
    assert (row.to_value, row.actor, row.cause) == (
        "RESOLVED",
        "admin",
        "resolved: WeChat confirmed by ticket 42",
    )
    assert row.from_value == f"{ExceptionKind.MISSING_REMOTE.value}#{exception.id}:OPEN"


def test_an_exception_opened_and_resolved_is_on_the_event_feed(make_world: MakeWorld) -> None:
    world = make_world()
    omitted = world.paid()
    world.control("POST", f"orders/{omitted.out_trade_no}/faults", {"bill_omit": True})
    world.open_bills(world.day)
    before = world.app.feed.head()
    (exception,) = world.recon.run_day(world.day).exceptions
    world.recon.resolve(exception.id, "WeChat confirmed by ticket 43", ADMIN)
    chosen = FeedFilter(frozenset({FeedType.RECON_EXCEPTION_OPENED, FeedType.RECON_EXCEPTION_RESOLVED}))
    events = [
        events_pb2.FeedEvent.FromString(e.payload) for e in world.app.feed.read(before, chosen, 10).events
    ]
    assert [e.type for e in events] == [
        events_pb2.EVENT_TYPE_RECON_EXCEPTION_OPENED,
        events_pb2.EVENT_TYPE_RECON_EXCEPTION_RESOLVED,
    ]
    assert {e.order_id for e in events} == {omitted.order_id}
    assert [e.recon_exception.exception_id for e in events] == [exception.id, exception.id]
    assert events[1].recon_exception.resolution == "WeChat confirmed by ticket 43"
