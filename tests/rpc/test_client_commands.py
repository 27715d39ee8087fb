"""`orderpay orders list|show` against a small fake OrderService on 127.0.0.1:0."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from clients import commands
from orderpay.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc


@dataclass
class FakeOrders(order_service_pb2_grpc.OrderServiceServicer):
    orders: dict[str, order_pb2.Order] = field(default_factory=dict)
    tokens_seen: list[str] = field(default_factory=list)

    def _auth(self, context: grpc.ServicerContext) -> None:
        self.tokens_seen.append(dict(context.invocation_metadata()).get("authorization", ""))

    def GetOrder(self, request, context):  # noqa: N802 - gRPC method name
        self._auth(context)
        if request.order_id not in self.orders:
            info = any_pb2.Any()
            info.Pack(error_details_pb2.ErrorInfo(reason="ORDER_NOT_FOUND", domain="orderpay"))
            status = status_pb2.Status(
                code=grpc.StatusCode.NOT_FOUND.value[0], message="no such order", details=[info]
            )
            context.abort_with_status(rpc_status.to_status(status))
        return order_service_pb2.GetOrderResponse(order=self.orders[request.order_id])

    def ListOrders(self, request, context):  # noqa: N802 - gRPC method name
        self._auth(context)
        mine = [o for o in self.orders.values() if o.user_id == request.user_id]
        if request.HasField("status"):
            mine = [o for o in mine if o.status == request.status]
        return order_service_pb2.ListOrdersResponse(orders=mine[: request.page_size], next_page_token="more")


@dataclass
class Served:
    fake: FakeOrders
    target: str


@pytest.fixture
def served() -> Iterator[Served]:
    fake = FakeOrders()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    order_service_pb2_grpc.add_OrderServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield Served(fake, f"127.0.0.1:{port}")
    server.stop(None)


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="orderpay")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def _order(user_id: str, status: order_pb2.OrderStatus.ValueType) -> order_pb2.Order:
    order = order_pb2.Order(
        order_id=uuid.uuid4().hex[:12],
        user_id=user_id,
        product_id="vip-month",
        quantity=1,
        total_fee=1990,
        status=status,
    )
    order.created_at.FromSeconds(1_700_000_000)
    return order


def test_list_prints_a_table_of_the_users_orders(
    served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    paid, unpaid = _order(user, order_pb2.ORDER_STATUS_PAID), _order(user, order_pb2.ORDER_STATUS_UNPAID)
    served.fake.orders.update({paid.order_id: paid, unpaid.order_id: unpaid})
    monkeypatch.setenv("ORDERPAY_GRPC_TARGET", served.target)
    monkeypatch.delenv("ORDERPAY_TOKEN", raising=False)

    code = _run("orders", "list", "--user-id", user, "--status", "PAID")

    out = capsys.readouterr().out
    assert code == 0
    assert paid.order_id in out
    assert unpaid.order_id not in out
    assert "¥19.90" in out
    assert "--page-token more" in out
    assert served.fake.tokens_seen == ["Bearer dev-admin-token"]


def test_show_prints_every_field(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    order = _order("u-1", order_pb2.ORDER_STATUS_PAID)
    served.fake.orders[order.order_id] = order

    code = _run("orders", "show", order.order_id, "--target", served.target, "--token", "tok-1")

    out = capsys.readouterr().out
    assert code == 0
    for expected in (order.order_id, "PAID", "¥19.90", "2023-11-14T22:13:20+00:00", "paid_at"):
        assert expected in out
    assert served.fake.tokens_seen == ["Bearer tok-1"]


def test_show_exits_1_with_the_reason(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    code = _run("orders", "show", "missing", "--target", served.target)

    err = capsys.readouterr().err
    assert code == 1
    assert "ORDER_NOT_FOUND: no such order" in err
    assert "request id:" in err
