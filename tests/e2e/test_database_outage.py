"""Drill: PostgreSQL is SIGKILLed mid-load and restarted (the database going away).

The stack runs on a throwaway cluster of this test's own. While the database is gone, gRPC answers a
retryable code (never INTERNAL), `/readyz` says unavailable and the sidecar answers 5xx so WeChat Pay
retries; once it is back, the same server process recovers, and nothing acknowledged is lost or doubled.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path

import grpc
import httpx
import psycopg2
import pytest

from clients.client import OrderPayClient
from orderpay.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc
from tests.support.pg_cluster import available, throwaway_cluster
from tests.support.purchase import PLAN_DAYS, membership_days
from tests.support.stack import BFF_TOKEN, Stack, running_stack
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(available() is not None, reason=f"no throwaway PostgreSQL: {available()}"),
]

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED}
PAID_ORDERS = 24


class CreateLoad:
    """CreateOrder with fresh keys in a loop on a raw stub: every answer's code, no client retries."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = order_service_pb2_grpc.OrderServiceStub(self._channel)
        self._stop = threading.Event()
        self.answers: list[tuple[str, grpc.StatusCode]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CreateLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._channel.close()

    def mark(self) -> int:
        return len(self.answers)

    def codes_since(self, mark: int) -> Counter[grpc.StatusCode]:
        return Counter(code for _, code in self.answers[mark:])

    def _run(self) -> None:
        metadata = (("authorization", f"Bearer {BFF_TOKEN}"),)
        while not self._stop.is_set():
            key = uuid.uuid4().hex
            request = order_service_pb2.CreateOrderRequest(
                request_id=key, user_id=f"outage-{key[:12]}", product_id="article-deep-dive", quantity=1
            )
            try:
                self._stub.CreateOrder(request, metadata=metadata, timeout=3)
                self.answers.append((key, grpc.StatusCode.OK))
            except grpc.RpcError as err:
                self.answers.append((key, err.code()))


def _ready(stack: Stack) -> int:
    return httpx.get(stack.notify_url.replace("/wxpay/notify", "/readyz"), timeout=5).status_code


def test_postgres_killed_mid_load_then_restarted(tmp_path: Path) -> None:
    with throwaway_cluster() as cluster:
        admin = psycopg2.connect(cluster.admin_url)
        admin.autocommit = True
        admin.cursor().execute("CREATE DATABASE orderpay_drill")
        admin.close()
        database_url = cluster.url("orderpay_drill")
        with running_stack(tmp_path, database_url) as stack, CreateLoad(stack.grpc_target) as load:
            with OrderPayClient(stack.grpc_target, BFF_TOKEN, default_timeout=10) as bff:
                users = [f"outage-payer-{uuid.uuid4().hex[:10]}" for _ in range(PAID_ORDERS)]
                orders = []
                for user in users:
                    order = bff.create_order(user, "vip-month").order
                    bff.create_payment(order.order_id, "NATIVE")
                    orders.append(order)
            wait_until(lambda: load.codes_since(0)[grpc.StatusCode.OK] >= 20, 30, "load running")
            for order in orders[: PAID_ORDERS // 2]:
                stack.pay(order.out_trade_no)

            cluster.kill()
            outage = load.mark()
            for order in orders[PAID_ORDERS // 2 :]:
                stack.pay(order.out_trade_no)
            late = {o.out_trade_no for o in orders[PAID_ORDERS // 2 :]}
            wait_until(lambda: sum(load.codes_since(outage).values()) >= 20, 60, "answers during the outage")
            wait_until(lambda: _ready(stack) == 503, 30, "/readyz reports the database gone")
            wait_until(
                lambda: any(
                    a["out_trade_no"] in late and (a["status"] or 0) >= 500 for a in stack.attempts()
                ),
                30,
                "the sidecar answering 5xx (WeChat Pay retries) while the database is gone",
            )
            during = load.codes_since(outage)

            cluster.start()
            back = load.mark()
            wait_until(lambda: load.codes_since(back)[grpc.StatusCode.OK] >= 20, 60, "recovery, no restart")
            wait_until(lambda: _ready(stack) == 200, 30, "/readyz recovers")
            assert stack.server is not None
            assert stack.server.poll() is None  # the same process recovered
            with OrderPayClient(stack.grpc_target, BFF_TOKEN, default_timeout=10) as bff:

                def all_fulfilled() -> bool:
                    return all(
                        bff.get_order(o.order_id).fulfilment == order_pb2.FULFILMENT_SUCCEEDED for o in orders
                    )

                wait_until(all_fulfilled, 90, "every paid order fulfilled", interval_s=0.5)
                for user, order in zip(users, orders, strict=True):
                    paid = bff.get_order(order.order_id)
                    assert paid.status == order_pb2.ORDER_STATUS_PAID
                    assert membership_days(bff, user, paid) == pytest.approx(PLAN_DAYS, abs=0.01)

        print(f"\noutage drill: answers while PostgreSQL was down: {dict(during)}")
        assert set(during) <= RETRYABLE | {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED}, during
        assert grpc.StatusCode.INTERNAL not in during
        # Every order acknowledged OK exists once; nothing was granted twice.
        acknowledged = [key for key, code in load.answers if code == grpc.StatusCode.OK]
        check = psycopg2.connect(database_url)
        with check, check.cursor() as cur:
            cur.execute(
                "SELECT request_id, count(*) FROM orders WHERE request_id = ANY(%s) GROUP BY 1",
                (acknowledged,),
            )
            found = dict(cur.fetchall())
            cur.execute("SELECT order_id, count(*) FROM grants GROUP BY 1 HAVING count(*) > 1")
            doubled = cur.fetchall()
        check.close()
        assert set(found) == set(acknowledged)
        assert set(found.values()) == {1}
        assert doubled == []
