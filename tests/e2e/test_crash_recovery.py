"""kill -9 of the server mid-batch of paid orders, then restart: each fulfilled exactly once."""

from __future__ import annotations

import signal

import pytest

from clients.client import OrderPayClient
from orderpay.v1 import order_pb2
from tests.support.purchase import PLAN_DAYS, membership_days
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # a kill -9 and a restart of the server per backend


def test_kill_9_mid_batch_then_restart_fulfils_every_paid_order_once(
    bff: OrderPayClient, stack: Stack, rid: str
) -> None:
    users = [f"crash-{rid}-{i}" for i in range(20)]
    orders = []
    for user in users:
        order = bff.create_order(user, "vip-month").order
        bff.create_payment(order.order_id, "NATIVE")
        orders.append(order)
    for order in orders:
        stack.pay(order.out_trade_no)
    stack.kill_server()
    stack.restart_server()
    with OrderPayClient(stack.grpc_target, "e2e-bff-token", default_timeout=10) as client:

        def all_fulfilled() -> bool:
            return all(
                client.get_order(o.order_id).fulfilment == order_pb2.FULFILMENT_SUCCEEDED for o in orders
            )

        wait_until(all_fulfilled, 60, "every paid order fulfilled after the restart", interval_s=0.5)
        for user, order in zip(users, orders, strict=True):
            paid = client.get_order(order.order_id)
            assert paid.status == order_pb2.ORDER_STATUS_PAID
            assert membership_days(client, user, paid) == pytest.approx(PLAN_DAYS, abs=0.01)


def test_sigterm_stops_the_server_cleanly_and_it_restarts(stack: Stack) -> None:
    assert stack.server is not None
    stack.server.send_signal(signal.SIGTERM)
    assert stack.server.wait(timeout=20) == 0
    stack.restart_server()
