"""A VIP purchase end to end, through real processes: exactly once, whatever WeChat Pay does."""

from __future__ import annotations

import pytest

from clients.client import OrderPayClient
from clients.errors import OrderPayError
from orderpay.v1 import order_pb2, pay_service_pb2
from tests.support.purchase import PLAN_DAYS, buy, membership_days
from tests.support.stack import Stack
from tests.support.waiting import wait_until


def test_vip_purchase_extends_membership_by_plan_days(bff: OrderPayClient, stack: Stack, rid: str) -> None:
    user = f"e2e-{rid}"
    assert not bff.get_membership(user).active
    order = buy(bff, stack, user)
    assert order.status == order_pb2.ORDER_STATUS_PAID
    assert order.fulfilment == order_pb2.FULFILMENT_SUCCEEDED
    assert bff.get_membership(user).active
    assert membership_days(bff, user, order) == pytest.approx(PLAN_DAYS, abs=0.01)


@pytest.mark.parametrize("spacing", [0.0, 1.0], ids=["concurrent", "one-second-apart"])
def test_duplicate_notifications_fulfil_once(
    bff: OrderPayClient, stack: Stack, rid: str, spacing: float
) -> None:
    user = f"e2e-{rid}"
    # time_scale 0.01 in the harness: 100 s of spacing here is ~1 s of wall time.
    order = buy(bff, stack, user, duplicate_notifications=4, duplicate_spacing_s=spacing * 100)
    assert order.fulfilment == order_pb2.FULFILMENT_SUCCEEDED
    wait_until(
        lambda: (
            sum(1 for a in stack.attempts() if a["out_trade_no"] == order.out_trade_no and a["status"]) >= 5
        ),
        20,
        "all five copies answered",
    )
    answers = {a["status"] for a in stack.attempts() if a["out_trade_no"] == order.out_trade_no}
    assert answers == {204}
    assert membership_days(bff, user, order) == pytest.approx(PLAN_DAYS, abs=0.01)


def test_notification_before_prepay_response_is_applied(bff: OrderPayClient, stack: Stack, rid: str) -> None:
    user = f"e2e-{rid}"
    order = bff.create_order(user, "vip-month").order
    stack.faults(order.out_trade_no, notify_before_prepay_response=True)
    bff.create_payment(order.order_id, "NATIVE")
    final = bff.get_order(order.order_id, wait_ms=15_000)
    assert (final.status, final.fulfilment) == (order_pb2.ORDER_STATUS_PAID, order_pb2.FULFILMENT_SUCCEEDED)


def test_dropped_notification_is_recovered_by_the_reconciler(
    bff: OrderPayClient, stack: Stack, rid: str
) -> None:
    order = buy(bff, stack, f"e2e-{rid}", notify_drop_rate=1.0)
    wait_until(
        lambda: bff.get_order(order.order_id).fulfilment == order_pb2.FULFILMENT_SUCCEEDED, 30, "reconciler"
    )


def test_amount_mismatch_is_held_and_grants_nothing(bff: OrderPayClient, stack: Stack, rid: str) -> None:
    user = f"e2e-{rid}"
    order = buy(bff, stack, user, wrong_amount_delta=-1)
    assert order.status == order_pb2.ORDER_STATUS_PAID
    assert order.fulfilment == order_pb2.FULFILMENT_HELD
    assert "AMOUNT_MISMATCH" in order.fulfilment_reason
    assert not bff.get_membership(user).active


def test_full_refund_takes_the_days_back(
    bff: OrderPayClient, admin: OrderPayClient, stack: Stack, rid: str
) -> None:
    user = f"e2e-{rid}"
    order = buy(bff, stack, user)
    half = order.total_fee // 2
    admin.refund_order(order.order_id, f"R1{rid}", half, "partial")
    wait_until(
        lambda: bff.get_order(order.order_id).status == order_pb2.ORDER_STATUS_PARTIALLY_REFUNDED,
        20,
        "partial",
    )
    with pytest.raises(OrderPayError) as over:
        admin.refund_order(order.order_id, f"R2{rid}", order.total_fee, "too much")
    assert over.value.reason == "REFUND_EXCEEDS_PAID"
    admin.refund_order(order.order_id, f"R3{rid}", order.total_fee - half, "rest")
    wait_until(
        lambda: bff.get_order(order.order_id).status == order_pb2.ORDER_STATUS_REFUNDED, 20, "full refund"
    )
    assert not bff.get_membership(user).active
    again = admin.refund_order(order.order_id, f"R3{rid}", order.total_fee - half, "rest")
    assert again.out_refund_no == f"R3{rid}"  # idempotent on out_refund_no


def test_bff_cannot_refund(bff: OrderPayClient, stack: Stack, rid: str) -> None:
    order = buy(bff, stack, f"e2e-{rid}")
    with pytest.raises(OrderPayError) as denied:
        bff.refund_order(order.order_id, f"R{rid}", 1, "x")
    assert denied.value.reason == "PERMISSION_DENIED"


def test_payment_after_local_expiry_is_never_lost(bff: OrderPayClient, stack: Stack, rid: str) -> None:
    order = bff.create_order(f"e2e-{rid}", "vip-month").order
    bff.create_payment(order.order_id, "NATIVE")
    stack.pay(order.out_trade_no)
    # Paid at WeChat: closing must not lose the money. Either the notification already made it
    # PAID, or WeChat's close answers ORDERPAID and the order is synced to PAID instead.
    with pytest.raises(OrderPayError) as refused:
        bff.close_order(order.order_id)
    assert refused.value.reason == "INVALID_STATE_TRANSITION"
    final = bff.get_order(order.order_id, wait_ms=15_000)
    assert final.status == order_pb2.ORDER_STATUS_PAID


def test_refund_notification_before_the_payment_one(
    bff: OrderPayClient, admin: OrderPayClient, stack: Stack, rid: str
) -> None:
    user = f"e2e-{rid}"
    order = bff.create_order(user, "vip-month").order
    stack.faults(order.out_trade_no, refund_before_payment=True)
    bff.create_payment(order.order_id, "NATIVE")
    stack.pay(order.out_trade_no)  # WeChat holds the payment notification back
    synced = admin.sync_payment(order.order_id)  # the active query repairs local state
    assert synced.status == order_pb2.ORDER_STATUS_PAID
    admin.refund_order(order.order_id, f"RB{rid}", order.total_fee, "changed mind")
    wait_until(lambda: bff.get_order(order.order_id).status == order_pb2.ORDER_STATUS_REFUNDED, 20, "refund")
    refund = admin.get_refund(f"RB{rid}", sync=True)
    assert refund.status == pay_service_pb2.REFUND_STATUS_SUCCESS
    wait_until(
        lambda: any(
            a["out_trade_no"] == order.out_trade_no
            and a["event_type"] == "TRANSACTION.SUCCESS"
            and a["status"] == 204
            for a in stack.attempts()
        ),
        20,
        "the late payment notification acknowledged as a duplicate",
    )
    final = bff.get_order(order.order_id)
    assert (final.status, final.refunded_fee) == (order_pb2.ORDER_STATUS_REFUNDED, order.total_fee)
    assert not bff.get_membership(user).active
