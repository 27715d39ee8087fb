"""A duplicate storm across kill -9: every key's copies, before the kill and after the restart, get one
order id, and the database holds exactly one order per key. After the restart the process has
forgotten which keys it answered (its read-first hint), so the re-sent keys go through insert-first
and conflict; before the kill, copies of a key answered once are read first."""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import grpc

from clients.client import OrderPayClient
from orderpay.v1 import order_service_pb2, order_service_pb2_grpc
from tests.support.stack import BFF_TOKEN, Stack
from tests.support.waiting import wait_until

COPIES = 6  # concurrent copies of each key
METADATA = (("authorization", f"Bearer {BFF_TOKEN}"),)


class Storm:
    """Sends each key COPIES times at once, key after key, until stopped; records every OK answer."""

    def __init__(self, target: str, keys: list[tuple[str, str]]) -> None:
        self.target, self.keys = target, keys
        self.answers: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.ok = 0
        self._lock = threading.Lock()

    def send_all(self) -> None:
        with grpc.insecure_channel(self.target) as channel, ThreadPoolExecutor(COPIES) as pool:
            stub = order_service_pb2_grpc.OrderServiceStub(channel)
            for key in self.keys:
                list(pool.map(lambda _copy, key=key: self._create(stub, key), range(COPIES)))

    def _create(self, stub: order_service_pb2_grpc.OrderServiceStub, key: tuple[str, str]) -> None:
        user, request_id = key
        request = order_service_pb2.CreateOrderRequest(
            request_id=request_id, user_id=user, product_id="vip-month", quantity=1
        )
        try:
            reply = stub.CreateOrder(request, metadata=METADATA, timeout=5)
        except grpc.RpcError:
            return  # the server was killed under this call: the copy after the restart answers it
        with self._lock:
            self.answers[key].add(reply.order.order_id)
            self.ok += 1


def test_duplicate_storm_across_kill_9_makes_one_order_per_key(stack: Stack, rid: str) -> None:
    keys = [(f"storm-{rid}-{i}", f"k-{i}") for i in range(40)]
    before = Storm(stack.grpc_target, keys)
    sender = threading.Thread(target=before.send_all)
    sender.start()
    wait_until(lambda: before.ok >= 10 * COPIES, 60, "the storm answering", interval_s=0.01)
    stack.kill_server()  # mid-storm: some keys committed, some in flight, some never sent
    sender.join(60)
    stack.restart_server()
    after = Storm(stack.grpc_target, keys)
    after.send_all()

    assert after.ok == len(keys) * COPIES  # every copy answered once the server is back
    for key in keys:
        assert len(before.answers[key] | after.answers[key]) == 1, key
    with OrderPayClient(stack.grpc_target, BFF_TOKEN, default_timeout=10) as client:
        for key in keys:
            orders = client.list_orders(key[0]).orders
            assert [o.order_id for o in orders] == list(after.answers[key]), key
