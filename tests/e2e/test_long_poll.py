"""Long-polls across real processes on PostgreSQL: woken by a commit in another process, and answered
with the current order when their server stops (SIGTERM)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from clients.bench.procs import free_port
from clients.client import OrderPayClient
from orderpay.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc
from tests.support.databases import fresh_postgres
from tests.support.stack import BFF_TOKEN, ROOT, STARTUP_S, Stack, running_stack
from tests.support.waiting import wait_until

WAIT_MS = 20_000  # the most a caller may ask
DEADLINE_S = 15.0  # under WAIT_MS: an answer in time was woken, not timed out
BFF = (("authorization", f"Bearer {BFF_TOKEN}"),)


@pytest.fixture(scope="module")
def stack(postgres_admin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Process B: sandbox + the full `orderpay serve` the sandbox notifies."""
    with fresh_postgres(postgres_admin) as url, running_stack(tmp_path_factory.mktemp("lp"), url) as running:
        yield running


@dataclass
class Waiter:
    """Process A: gRPC and the sidecar (for /metrics), no jobs; never notified by the sandbox."""

    process: subprocess.Popen[bytes]
    target: str
    metrics_url: str

    def parked(self) -> int:
        return int(self.metric("orderpay_waiters_parked "))

    def metric(self, prefix: str) -> float:
        for line in httpx.get(self.metrics_url, timeout=5).text.splitlines():
            if line.startswith(prefix):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.fixture
def waiter(stack: Stack, tmp_path: Path) -> Iterator[Waiter]:
    grpc_port, notify_port, metrics_port = free_port(), free_port(), free_port()
    env = {
        **stack.server_env,
        "ORDERPAY_GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
        "ORDERPAY_NOTIFY_LISTEN": f"127.0.0.1:{notify_port}",
        "ORDERPAY_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "ORDERPAY_JOBS_ENABLED": "false",
    }
    with (tmp_path / "waiter.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    found = Waiter(process, f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{metrics_port}/metrics")
    wait_until(
        lambda: _answers(found.metrics_url),
        STARTUP_S,
        "process A's metrics listener",
        child=process,
        output=tmp_path / "waiter.log",
    )
    yield found
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_on(target: str, order_id: str) -> tuple[grpc.Channel, grpc.Future]:
    channel = grpc.insecure_channel(target)
    stub = order_service_pb2_grpc.OrderServiceStub(channel)
    request = order_service_pb2.GetOrderRequest(order_id=order_id, wait_ms=WAIT_MS)
    return channel, stub.GetOrder.future(request, metadata=BFF, timeout=DEADLINE_S)


def test_a_waiter_is_woken_by_a_fulfilment_committed_in_another_process(
    stack: Stack, waiter: Waiter, rid: str
) -> None:
    with OrderPayClient(stack.grpc_target, BFF_TOKEN, default_timeout=10) as bff:
        order = bff.create_order(f"lp-{rid}", "vip-month").order
        bff.create_payment(order.order_id, "NATIVE")  # B's notify_url: B applies and fulfils
    channel, waiting = _wait_on(waiter.target, order.order_id)
    with channel:
        wait_until(lambda: waiter.parked() == 1, 10, "the waiter to park on process A")
        stack.pay(order.out_trade_no)
        answer = waiting.result()
    assert answer.order.status == order_pb2.ORDER_STATUS_PAID
    assert answer.order.fulfilment == order_pb2.FULFILMENT_SUCCEEDED
    assert waiter.parked() == 0
    # Answered by the NOTIFY from process B, not by its deadline (there is no other timer).
    assert waiter.metric('orderpay_waiter_answers_total{by="signal"}') == 1
    assert waiter.metric('orderpay_waiter_answers_total{by="timeout"}') == 0


def test_sigterm_answers_parked_waiters_with_the_current_order(
    stack: Stack, waiter: Waiter, rid: str
) -> None:
    with OrderPayClient(stack.grpc_target, BFF_TOKEN, default_timeout=10) as bff:
        order = bff.create_order(f"lp-{rid}", "vip-month").order
    channel, waiting = _wait_on(waiter.target, order.order_id)
    with channel:
        wait_until(lambda: waiter.parked() == 1, 10, "the waiter to park on process A")
        waiter.process.send_signal(signal.SIGTERM)
        answer = waiting.result()
    assert answer.order.order_id == order.order_id
    assert answer.order.status == order_pb2.ORDER_STATUS_UNPAID
    assert answer.order.fulfilment == order_pb2.FULFILMENT_PENDING
    assert waiter.process.wait(timeout=20) == 0
