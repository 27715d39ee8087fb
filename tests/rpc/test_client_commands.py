"""`orderpay orders list|show` against a small fake OrderService on 127.0.0.1:0."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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
from tests.support.terminal import run_in_terminal


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


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "clients.cli", *args]


@pytest.fixture
def two_orders(served: Served) -> tuple[str, list[order_pb2.Order]]:
    user = f"u-{uuid.uuid4().hex[:8]}"
    orders = [
        _order(user, order_pb2.ORDER_STATUS_PARTIALLY_REFUNDED),
        _order(user, order_pb2.ORDER_STATUS_PAID),
    ]
    for order in orders:
        order.order_id = f"ord_{uuid.uuid4().hex[:24]}"  # as long as the server's ids
        order.fulfilment = order_pb2.FULFILMENT_SUCCEEDED
        served.fake.orders[order.order_id] = order
    return user, orders


def test_a_piped_table_is_complete(served: Served, two_orders: tuple[str, list[order_pb2.Order]]) -> None:
    user, orders = two_orders

    done = subprocess.run(
        _cli("orders", "list", "--user-id", user, "--target", served.target),
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "COLUMNS": "40"},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    rows = [line for line in done.stdout.splitlines() if "ord_" in line]
    assert len(rows) == 2  # one line per order, every cell whole
    for row, order in zip(rows, orders, strict=True):
        for cell in (order.order_id, "vip-month", "¥19.90", "SUCCEEDED", "2023-11-14 22:13:20"):
            assert cell in row
    assert "PARTIALLY_REFUNDED" in rows[0]


@pytest.mark.parametrize("columns", [80, 60])
def test_on_a_narrow_terminal_the_table_fits_and_nothing_is_cut(
    served: Served, two_orders: tuple[str, list[order_pb2.Order]], columns: int
) -> None:
    user, orders = two_orders

    code, screen = run_in_terminal(
        _cli("orders", "list", "--user-id", user, "--target", served.target), columns=columns
    )

    assert code == 0, screen
    assert "…" not in screen
    assert max(len(line) for line in screen.splitlines()) <= columns
    for order in orders:
        assert order.order_id in screen
    assert "PARTIALLY_REFUNDED," in screen  # wrapped, if at all, between words
    assert "SUCCEEDED" in screen
    assert "2023-11-14 22:13:20" in screen


def test_on_a_wide_terminal_one_line_per_order(
    served: Served, two_orders: tuple[str, list[order_pb2.Order]]
) -> None:
    user, _ = two_orders

    code, screen = run_in_terminal(
        _cli("orders", "list", "--user-id", user, "--target", served.target), columns=160
    )

    assert code == 0, screen
    assert "created (UTC)" in screen
    assert len([line for line in screen.splitlines() if "ord_" in line]) == 2


def test_list_and_show_print_json(served: Served, two_orders: tuple[str, list[order_pb2.Order]]) -> None:
    user, orders = two_orders

    listed = subprocess.run(
        _cli("orders", "list", "--user-id", user, "--target", served.target, "--json"),
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    shown = subprocess.run(
        _cli("orders", "show", orders[0].order_id, "--target", served.target, "--json"),
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip

    page = json.loads(listed.stdout)
    assert [o["order_id"] for o in page["orders"]] == [o.order_id for o in orders]
    assert page["next_page_token"] == "more"
    one = json.loads(shown.stdout)
    assert one["order_id"] == orders[0].order_id
    assert (one["total_fee"], one["quantity"]) == (1990, 1)  # numbers, not proto-JSON strings
    assert (one["status"], one["fulfilment"]) == ("ORDER_STATUS_PARTIALLY_REFUNDED", "FULFILMENT_SUCCEEDED")
    assert one["created_at"] == "2023-11-14T22:13:20Z"
