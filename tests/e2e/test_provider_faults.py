"""WeChat Pay misbehaving: errors, latency, lost notifications, a full outage. Nothing lost or doubled."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clients.client import OrderPayClient
from clients.errors import OrderPayError
from orderpay.v1 import order_pb2
from tests.support.stack import ADMIN_TOKEN, BFF_TOKEN, Stack, running_stack
from tests.support.waiting import wait_until

SERVER = {"wxpay_breaker_fail_max": "4", "wxpay_breaker_reset_s": "1", "wxpay_backoff_base_s": "0.02"}


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("faults"), database_url, **SERVER) as running:
        yield running


@pytest.fixture(autouse=True)
def healthy_gateway(stack: Stack) -> Iterator[None]:
    yield
    stack.control(
        "PUT", "config", {"faults": {"api_error_rate": 0.0, "api_latency_ms": 0.0, "notify_drop_rate": 0.0}}
    )


def test_thirty_percent_dropped_notifications_are_all_recovered(stack: Stack, rid: str) -> None:
    stack.control("PUT", "config", {"faults": {"notify_drop_rate": 0.3}})
    with OrderPayClient(stack.grpc_target, BFF_TOKEN, default_timeout=10) as bff:
        orders = []
        for i in range(20):
            order = bff.create_order(f"drop-{rid}-{i}", "vip-month").order
            bff.create_payment(order.order_id, "NATIVE")
            stack.pay(order.out_trade_no)
            orders.append(order)
        dropped = [
            a
            for a in stack.attempts()
            if a["kind"] == "dropped" and a["out_trade_no"] in {o.out_trade_no for o in orders}
        ]
        assert dropped, "the fault did not drop anything: the test would prove nothing"
        wait_until(
            lambda: all(
                bff.get_order(o.order_id).fulfilment == order_pb2.FULFILMENT_SUCCEEDED for o in orders
            ),
            60,
            "the reconciler to recover every dropped notification",
            interval_s=0.5,
        )


def test_errors_and_latency_never_lose_or_double(stack: Stack, rid: str) -> None:
    stack.control(
        "PUT",
        "config",
        {
            "faults": {
                "api_error_rate": 0.2,
                "api_error_code": "SYSTEM_ERROR",
                "api_latency_ms": 30,
                "api_latency_jitter_ms": 20,
            }
        },
    )
    with (
        OrderPayClient(stack.grpc_target, BFF_TOKEN, default_timeout=15, max_attempts=5) as bff,
        OrderPayClient(stack.grpc_target, ADMIN_TOKEN, default_timeout=15, max_attempts=5) as admin,
    ):
        paid = []
        for i in range(12):
            order = bff.create_order(f"flaky-{rid}-{i}", "vip-month").order
            payment = bff.create_payment(order.order_id, "NATIVE")
            again = bff.create_payment(order.order_id, "NATIVE")
            assert again.code_url == payment.code_url  # one prepay per order, retries or not
            stack.pay(order.out_trade_no)
            paid.append(order)
        for order in paid:
            wait_until(
                lambda o=order: bff.get_order(o.order_id).fulfilment == order_pb2.FULFILMENT_SUCCEEDED,
                30,
                "fulfilment",
            )
            admin.refund_order(order.order_id, f"RF{order.order_id}"[:64], order.total_fee, "flaky")
        for order in paid:
            wait_until(
                lambda o=order: bff.get_order(o.order_id).status == order_pb2.ORDER_STATUS_REFUNDED,
                30,
                "refund settled",
            )
    state = stack.control("GET", "state")
    refunds = [r for r in state["refunds"] if r["out_trade_no"] in {o.out_trade_no for o in paid}]
    assert len(refunds) == len(paid)  # exactly one refund per order at WeChat
    assert all(r["amount"]["refund"] == r["amount"]["total"] for r in refunds)


def test_full_outage_opens_the_breaker_then_it_closes(stack: Stack, rid: str) -> None:
    with OrderPayClient(stack.grpc_target, BFF_TOKEN, default_timeout=10, max_attempts=1) as bff:
        orders = [bff.create_order(f"outage-{rid}-{i}", "vip-month").order for i in range(8)]
        stack.control("PUT", "config", {"faults": {"api_error_rate": 1.0}})
        reasons = []
        for order in orders[:6]:
            with pytest.raises(OrderPayError) as failed:
                bff.create_payment(order.order_id, "NATIVE")
            reasons.append(failed.value.reason)
        assert set(reasons) == {"PROVIDER_UNAVAILABLE"}
        with pytest.raises(OrderPayError) as fast:
            bff.create_payment(orders[6].order_id, "NATIVE")
        assert fast.value.reason == "PROVIDER_UNAVAILABLE"
        assert fast.value.metadata.get("circuit") == "open"
        stack.control("PUT", "config", {"faults": {"api_error_rate": 0.0}})

        def recovered() -> bool:
            try:
                bff.create_payment(orders[7].order_id, "NATIVE")
            except OrderPayError:
                return False
            return True

        wait_until(recovered, 20, "the breaker to close after the outage", interval_s=0.3)
