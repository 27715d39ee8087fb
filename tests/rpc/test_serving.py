"""The serving core through real gRPC: parked long-polls and admission control."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import grpc
import psycopg2
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderpay.v1 import order_pb2, order_service_pb2, vip_service_pb2
from server.app import App
from server.domain.order import Fulfilment, OrderStatus
from server.serving.admission import Slot
from server.serving.signals import CHANNEL
from tests.support.rpc_calls import create, refused
from tests.support.serving import ServingThread
from tests.support.tokens import BFF
from tests.support.waiting import wait_until

pb = order_service_pb2
LONG_WAIT_MS = 20_000  # the most a caller may ask
DEADLINE_S = 15.0  # under LONG_WAIT_MS: an answer in time was woken, not timed out


def parked(server: ServingThread) -> int:
    return server.on_loop(lambda: len(server.stack.waiters))


def fulfil_in_db(app: App, order_id: str) -> None:
    """What the fulfilment worker commits, without the payment machinery (no credentials here)."""
    with app.uow() as uow:
        order = uow.orders.get(order_id)
        assert order is not None
        assert uow.orders.save(
            order, replace(order, status=OrderStatus.PAID, fulfilment=Fulfilment.SUCCEEDED)
        )


def test_a_waiter_is_woken_by_the_fulfilment_signal(
    app: App, grpc_server: ServingThread, orders: Any, rid: str
) -> None:
    order_id = create(orders, f"u-{rid}", "k").order.order_id
    waiting = orders.GetOrder.future(
        pb.GetOrderRequest(order_id=order_id, wait_ms=LONG_WAIT_MS), metadata=BFF, timeout=DEADLINE_S
    )
    wait_until(lambda: parked(grpc_server) == 1, what="the waiter to park")
    fulfil_in_db(app, order_id)
    grpc_server.stack.decisions.publish(order_id)  # what the FulfilmentDecided reaction calls
    answer = waiting.result()
    assert answer.order.fulfilment == order_pb2.FULFILMENT_SUCCEEDED
    assert parked(grpc_server) == 0


def test_a_cancelled_wait_releases_its_registry_entry(
    grpc_server: ServingThread, orders: Any, rid: str
) -> None:
    order_id = create(orders, f"u-{rid}", "k").order.order_id
    waiting = orders.GetOrder.future(
        pb.GetOrderRequest(order_id=order_id, wait_ms=LONG_WAIT_MS), metadata=BFF, timeout=DEADLINE_S
    )
    wait_until(lambda: parked(grpc_server) == 1, what="the waiter to park")
    assert waiting.cancel()
    wait_until(lambda: parked(grpc_server) == 0, what="the cancelled waiter to leave")
    with pytest.raises(grpc.FutureCancelledError):
        waiting.result()


def test_health_and_cheap_reads_answer_while_the_admission_limit_is_reached(
    grpc_server: ServingThread, channel: grpc.Channel, orders: Any, vip: Any, rid: str
) -> None:
    order_id = create(orders, f"u-{rid}", "k").order.order_id
    admission = grpc_server.stack.admission
    held: list[Slot] = grpc_server.on_loop(
        lambda: [admission.enter("/held") for _ in range(admission.limit - admission.in_flight)]
    )
    try:
        failure = refused(orders.CreateOrder, _create_request(rid), metadata=BFF, timeout=5)
        assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert vip.ListPlans(vip_service_pb2.ListPlansRequest(), metadata=BFF, timeout=5).plans
        got = orders.GetOrder(pb.GetOrderRequest(order_id=order_id), metadata=BFF, timeout=5)
        assert got.order.order_id == order_id
    finally:
        grpc_server.on_loop(lambda: [slot.release() for slot in held])
    assert orders.CreateOrder(_create_request(rid), metadata=BFF, timeout=5).order.order_id


def _create_request(rid: str) -> order_service_pb2.CreateOrderRequest:
    return pb.CreateOrderRequest(request_id="k2", user_id=f"u2-{rid}", product_id="vip-month", quantity=1)


@pytest.mark.postgres
def test_the_listener_comes_back_after_its_connection_is_killed(
    app: App, database_url: str, grpc_server: ServingThread, orders: Any, rid: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    first = _listener_pid(database_url)
    with psycopg2.connect(database_url) as admin:
        admin.cursor().execute("SELECT pg_terminate_backend(%s)", (first,))
    wait_until(lambda: _listener_pid(database_url) not in {None, first}, 20, "the listener to reconnect")
    order_id = create(orders, f"u-{rid}", "k").order.order_id
    waiting = orders.GetOrder.future(
        pb.GetOrderRequest(order_id=order_id, wait_ms=LONG_WAIT_MS), metadata=BFF, timeout=DEADLINE_S
    )
    wait_until(lambda: grpc_server.on_loop(lambda: grpc_server.stack.waiters.waiting) == 1, what="a park")
    fulfil_in_db(app, order_id)
    with psycopg2.connect(database_url) as other_process:  # the commit's NOTIFY, as another process sends it
        other_process.cursor().execute("SELECT pg_notify(%s, %s)", (CHANNEL, order_id))
    assert waiting.result().order.fulfilment == order_pb2.FULFILMENT_SUCCEEDED


def _listener_pid(database_url: str) -> int | None:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            (f"LISTEN {CHANNEL}",),
        )
        row = cur.fetchone()
    return None if row is None else int(row[0])
