"""AdminService over a real in-process gRPC server, and `orderpay ops …` against it (--json and tables):
admin only, every action audited with the call's request id."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from clients.cli import main
from orderpay.v1 import admin_service_pb2 as pb
from orderpay.v1 import admin_service_pb2_grpc
from server.app import App
from server.domain.order import Order
from tests.operations.helpers import held
from tests.support.fake_gateway import FakeGateway
from tests.support.serving import ServingThread
from tests.support.terminal import run_in_terminal

ADMIN_TOKEN, BFF_TOKEN = "test-admin-token", "test-bff-token"


@pytest.fixture
def server(app: App) -> Iterator[ServingThread]:
    running = ServingThread(app)  # gRPC only, as `orderpay serve` serves it
    yield running
    running.stop(1)


@pytest.fixture
def target(server: ServingThread) -> str:
    return f"127.0.0.1:{server.port}"


def ops(
    capsys: pytest.CaptureFixture[str], target: str, *args: str, token: str = ADMIN_TOKEN
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["ops", *args, "--target", target, "--token", token])
    out, err = capsys.readouterr()
    return code, out, err


def as_json(out: str) -> dict[str, Any]:
    """The CLI's JSON document (the in-process server's log lines share stdout in tests)."""
    start = out.index("{\n") if out.startswith("{") is False else 0
    document, _ = json.JSONDecoder().raw_decode(out[start:])
    assert isinstance(document, dict)
    return document


def test_a_bff_token_gets_permission_denied(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = admin_service_pb2_grpc.AdminServiceStub(channel)
        with pytest.raises(grpc.RpcError) as denied:
            stub.ListAllOrders(
                pb.ListAllOrdersRequest(), metadata=(("authorization", f"Bearer {BFF_TOKEN}"),)
            )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_find_a_held_order_and_refund_it_from_the_cli(
    app: App,
    gateway: FakeGateway,
    target: str,
    rid: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    order: Order = held(app, gateway, f"cli-{rid}")
    code, out, _ = ops(capsys, target, "orders", "--attention", "--user", f"cli-{rid}", "--json")
    assert code == 0
    listed = as_json(out)["orders"]
    assert [(o["order_id"], o["fulfilment"]) for o in listed] == [(order.order_id, "FULFILMENT_HELD")]

    code, out, _ = ops(
        capsys, target, "resolve", order.order_id, "--refund", "--reason", "paid 1 fen short",
        "--expected-version", str(order.version),
    )  # fmt: skip
    assert code == 0, out
    assert "resolve_refund: done" in out
    assert f"refund OPS{order.order_id}" in out

    code, out, _ = ops(capsys, target, "show", order.order_id, "--json")
    story = as_json(out)
    operation = [e for e in story["events"] if e["field"] == "operation"]
    assert len(operation) == 1
    assert operation[0]["actor"] == "admin"
    assert operation[0]["request_id"]  # the call's x-request-id
    assert "paid 1 fen short" in operation[0]["cause"]
    assert [r["out_refund_no"] for r in story["refunds"]] == [f"OPS{order.order_id}"]

    # The same resolution again with the stale version: idempotent, one refund.
    code, out, _ = ops(capsys, target, "resolve", order.order_id, "--refund", "--reason", "again", "--json")
    assert as_json(out)["outcome"] == "already_done"
    # Accepting it now is refused with the reason, exit code 1.
    code, _, err = ops(capsys, target, "resolve", order.order_id, "--accept", "--reason", "no")
    assert code == 1
    assert "INVALID_STATE_TRANSITION" in err


def test_tables_and_jobs(
    app: App, gateway: FakeGateway, target: str, rid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    order = held(app, gateway, f"tab-{rid}")
    code, out, _ = ops(capsys, target, "orders", "--query", order.out_trade_no)
    assert code == 0
    assert order.order_id in out
    assert "HELD" in out
    ops(capsys, target, "resolve", order.order_id, "--refund", "--reason", "r")
    code, out, _ = ops(capsys, target, "jobs", "--kind", "refund_poll", "--json")
    assert f"OPS{order.order_id}" in {r["out_refund_no"] for r in as_json(out).get("refund_polls", [])}
    code, out, _ = ops(
        capsys, target, "revoke-job", "refund_poll", f"OPS{order.order_id}", "--reason", "ticket"
    )
    assert "revoke_job: done" in out
    code, out, _ = ops(capsys, target, "refunds", "--stuck", "--json")
    assert f"OPS{order.order_id}" in {r["out_refund_no"] for r in as_json(out).get("refunds", [])}
    code, _, err = ops(capsys, target, "replay", "no-such-id", "--reason", "x")
    assert code == 1
    assert "NOTIFICATION_NOT_FOUND" in err or "INVALID_ARGUMENT" in err


def test_an_operator_reads_yuan_in_the_terminal_and_fen_in_json(
    app: App, gateway: FakeGateway, target: str, rid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ops show` / `ops refunds` on a terminal: the HELD reason and refund amounts in yuan; `--json`
    keeps fen for machines."""
    order: Order = held(app, gateway, f"yuan-{rid}")
    cli = [sys.executable, "-m", "clients.cli", "ops"]
    auth = ["--target", target, "--token", ADMIN_TOKEN]
    code, shown = run_in_terminal([*cli, "show", order.order_id, *auth], columns=200)
    assert code == 0, shown
    assert "paid ¥17.99, due ¥18.00" in shown
    assert "1799" not in shown
    code, out, _ = ops(capsys, target, "resolve", order.order_id, "--refund", "--reason", "short")
    assert code == 0, out
    code, listed = run_in_terminal([*cli, "refunds", "--status", "processing", *auth], columns=200)
    assert code == 0, listed
    row = next(line for line in listed.splitlines() if f"OPS{order.order_id}" in line)
    assert "¥17.99" in row
    code, out, _ = ops(capsys, target, "show", order.order_id, "--json")
    assert as_json(out)["refunds"][0]["amount"] == "1799"
