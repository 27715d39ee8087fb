"""orderpay behind a real pgbouncer (docs/high-availability.md § Connection poolers).

- session pooling: works as a direct connection (LISTEN, advisory locks, session settings).
- transaction pooling: works with ORDERPAY_DATABASE_SESSION_URL, a direct URL for what needs a session
  of its own (the LISTEN connection and the migration lock); every call and transaction goes through
  pgbouncer.
- statement pooling: does not work (orderpay's writes are multi-statement transactions): start-up fails
  in one line.

Each case: a purchase paid and fulfilled through pgbouncer, and a long-poll on a second process woken by
that fulfilment, which only the LISTEN connection can carry across processes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from clients.bench.procs import free_port
from clients.client import OrderPayClient
from orderpay.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc
from tests.support.databases import fresh_postgres
from tests.support.pg_bouncer import available, running_pgbouncer
from tests.support.stack import BFF_TOKEN, ROOT, STARTUP_S, Stack, running_stack
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(available() is not None, reason=f"no pgbouncer: {available()}"),
]
BFF = (("authorization", f"Bearer {BFF_TOKEN}"),)
WAIT_MS = 20_000
DEADLINE_S = 15.0  # under WAIT_MS: an answer in time was woken, not timed out


@pytest.fixture
def direct_url(postgres_admin: str) -> Iterator[str]:
    with fresh_postgres(postgres_admin) as url:
        yield url


def _through(bouncer_url: str, direct: str) -> str:
    return bouncer_url.rsplit("/", 1)[0] + "/" + direct.rsplit("/", 1)[1]


def _waiter(stack: Stack, workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """A second `orderpay serve` (no jobs, never notified by the sandbox): it learns of the
    fulfilment only through LISTEN. Returns the process, its gRPC target and its /metrics URL."""
    target, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = {
        **stack.server_env,
        "ORDERPAY_GRPC_LISTEN": target,
        "ORDERPAY_NOTIFY_LISTEN": f"127.0.0.1:{free_port()}",
        "ORDERPAY_METRICS_LISTEN": metrics,
        "ORDERPAY_JOBS_ENABLED": "false",
    }
    with (workdir / "waiter.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    return process, target, f"http://{metrics}/metrics"


def _parked(metrics_url: str) -> int:
    try:
        text = httpx.get(metrics_url, timeout=2).text
    except httpx.HTTPError:
        return -1
    for line in text.splitlines():
        if line.startswith("orderpay_waiters_parked "):
            return int(float(line.split()[1]))
    return 0


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_a_purchase_and_a_cross_process_long_poll_through_pgbouncer(
    mode: str, direct_url: str, tmp_path: Path, rid: str
) -> None:
    with running_pgbouncer(direct_url, mode) as bouncer:
        pooled = _through(bouncer.url("postgres"), direct_url)
        session = {"database_session_url": direct_url} if mode == "transaction" else {}
        with running_stack(tmp_path, pooled, **session) as stack:
            waiter, target, metrics = _waiter(stack, tmp_path)
            try:
                wait_until(  # a start-up: the harness's bound, ended at once if the child exits
                    lambda: _parked(metrics) == 0,
                    STARTUP_S,
                    "the waiter process serving",
                    child=waiter,
                    output=tmp_path / "waiter.log",
                )
                with OrderPayClient(stack.grpc_target, BFF_TOKEN, default_timeout=10) as bff:
                    order = bff.create_order(f"bouncer-{rid}", "vip-month").order
                    bff.create_payment(order.order_id, "NATIVE")
                with grpc.insecure_channel(target) as channel:
                    stub = order_service_pb2_grpc.OrderServiceStub(channel)
                    waiting = stub.GetOrder.future(
                        order_service_pb2.GetOrderRequest(order_id=order.order_id, wait_ms=WAIT_MS),
                        metadata=BFF,
                        timeout=DEADLINE_S,
                    )
                    wait_until(lambda: _parked(metrics) == 1, 10, "the long-poll parked on the waiter")
                    stack.pay(order.out_trade_no)
                    answer = waiting.result()
            finally:
                waiter.send_signal(signal.SIGTERM)
                waiter.wait(timeout=20)
    assert answer.order.status == order_pb2.ORDER_STATUS_PAID
    assert answer.order.fulfilment == order_pb2.FULFILMENT_SUCCEEDED


def test_statement_pooling_is_refused_at_start(direct_url: str) -> None:
    with running_pgbouncer(direct_url, "statement") as bouncer:
        pooled = _through(bouncer.url("postgres"), direct_url)
        done = subprocess.run(
            [sys.executable, "-m", "clients.cli", "migrate"],
            env={"PATH": "/usr/bin:/bin", "ORDERPAY_DATABASE_URL": pooled},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2  # a start-up error: one line, no traceback
    assert "cannot open the database" in done.stderr
    assert "Traceback" not in done.stderr
