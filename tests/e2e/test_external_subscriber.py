"""The example subscriber (clients/external_subscriber.py) as a real process fulfils an EXTERNAL
product end to end: paid through the sandbox, requested on the feed, confirmed by the subscriber,
GetOrder(wait_ms) woken by the confirmation; a full refund then reaches it as GRANT_REVOKED.
`orderpay events tail` prints the same story."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.client import OrderPayClient
from orderpay.v1 import order_pb2
from tests.support.stack import ADMIN_TOKEN, BFF_TOKEN, ROOT, Stack, running_stack
from tests.support.waiting import wait_until

FEED_TOKEN = "e2e-feed-token"
TOKENS = f"bff:{BFF_TOKEN},admin:{ADMIN_TOKEN},feed:{FEED_TOKEN}"
LONG_WAIT_MS = 20_000


@pytest.fixture
def feed_stack(database_url: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, database_url, api_tokens=TOKENS) as running:
        yield running


@pytest.fixture
def subscriber(feed_stack: Stack, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "subscriber.log"
    env = {**os.environ, "ORDERPAY_GRPC_TARGET": feed_stack.grpc_target, "ORDERPAY_TOKEN": FEED_TOKEN}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "clients.external_subscriber", f"gift-desk-{secrets.token_hex(3)}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        process.terminate()
        process.wait(10)


def test_the_example_subscriber_fulfils_an_external_product(
    feed_stack: Stack, subscriber: Path, rid: str
) -> None:
    with OrderPayClient(feed_stack.grpc_target, BFF_TOKEN, default_timeout=30) as bff:
        order = bff.create_order(f"buyer-{rid}", "gift-card").order
        assert order.kind == order_pb2.PRODUCT_KIND_EXTERNAL
        bff.create_payment(order.order_id, "NATIVE")
        feed_stack.pay(order.out_trade_no)
        decided = bff.get_order(order.order_id, wait_ms=LONG_WAIT_MS)  # woken by the confirmation
    assert decided.fulfilment == order_pb2.FULFILMENT_SUCCEEDED
    # The subscriber logs once its ConfirmFulfilment returned: after the commit that woke GetOrder.
    wait_until(lambda: f"fulfilled {order.order_id}" in subscriber.read_text(), 30, "the subscriber's log")

    with OrderPayClient(feed_stack.grpc_target, ADMIN_TOKEN, default_timeout=30) as admin:
        admin.refund_order(order.order_id, f"R{rid}", order.total_fee, "changed their mind")
    wait_until(lambda: f"revoked {order.order_id}" in subscriber.read_text(), 60, "GRANT_REVOKED delivered")

    env = {**os.environ, "ORDERPAY_GRPC_TARGET": feed_stack.grpc_target, "ORDERPAY_TOKEN": FEED_TOKEN}
    command = ["events", "tail", "--from", "0", "--type", "fulfilment_requested", "--type", "grant_revoked"]
    tail = subprocess.run(
        [sys.executable, "-m", "clients.cli", *command, "--limit", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = tail.stdout.splitlines()
    assert [line.split()[2] for line in lines] == ["FULFILMENT_REQUESTED", "GRANT_REVOKED"]
    assert all(order.order_id in line for line in lines)
