"""The event feed survives kill -9: a subscriber sees every position exactly once (after dropping
re-deliveries), in order, while a payment storm runs and the server it streams from is killed and
restarted. SQLite: one server. PostgreSQL: two server processes, the storm written through one while
the subscriber streams from the other (woken by LISTEN/NOTIFY), and the streaming one killed."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from clients.client import OrderPayClient
from orderpay.v1 import events_pb2, events_pb2_grpc, order_pb2
from tests.support.feed_watcher import FeedWatcher, check_exactly_once_in_order
from tests.support.stack import ADMIN_TOKEN, BFF_TOKEN, Stack, running_stack
from tests.support.waiting import wait_until

FEED_TOKEN = "e2e-feed-token"
TOKENS = f"bff:{BFF_TOKEN},admin:{ADMIN_TOKEN},feed:{FEED_TOKEN}"
STORM = 24  # paid orders per wave
pytestmark = pytest.mark.slow  # a storm, a kill -9 and a restart per backend


@pytest.fixture
def feed_stack(database_url: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, database_url, api_tokens=TOKENS) as running:
        yield running


def head(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = events_pb2_grpc.EventServiceStub(channel)
        request = events_pb2.RegisterSubscriberRequest(subscriber="e2e-probe")
        answer = stub.RegisterSubscriber(
            request, metadata=(("authorization", f"Bearer {FEED_TOKEN}"),), timeout=5
        )
        return int(answer.head_position)


def storm(stack: Stack, target: str, rid: str, wave: str, paid: list[str]) -> None:
    """Create, prepay and pay STORM orders through `target`; calls refused while a server is down are
    simply lost (the test counts what the log holds, not what was attempted)."""

    def one(i: int) -> None:
        try:
            with OrderPayClient(target, BFF_TOKEN, default_timeout=5) as client:
                order = client.create_order(f"storm-{rid}-{wave}-{i}", "vip-month").order
                client.create_payment(order.order_id, "NATIVE")
                stack.pay(order.out_trade_no)
                paid.append(order.order_id)
        except Exception:  # noqa: S110 - the server was killed under this call: fine
            pass

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(one, range(STORM)))


def settle(target: str, order_ids: list[str]) -> None:
    with OrderPayClient(target, BFF_TOKEN, default_timeout=10) as client:

        def done() -> bool:
            return all(client.get_order(o).fulfilment == order_pb2.FULFILMENT_SUCCEEDED for o in order_ids)

        wait_until(done, 90, "every paid order fulfilled", interval_s=0.5)


def run_crash_drill(stack: Stack, watch_from: Stack, write_to: Stack, rid: str) -> None:
    start = head(watch_from.grpc_target)
    watcher = FeedWatcher([watch_from.grpc_target], FEED_TOKEN, f"drill-{rid}")
    paid: list[str] = []
    watcher.start()
    first = threading.Thread(target=storm, args=(stack, write_to.grpc_target, rid, "a", paid))
    first.start()
    wait_until(lambda: len(watcher.delivered) >= 10, 60, "the stream to be mid-flow")
    watch_from.kill_server()  # kill -9 mid-stream, the storm still running
    first.join(120)
    watch_from.restart_server()
    storm(stack, write_to.grpc_target, rid, "b", paid)
    settle(write_to.grpc_target, paid)
    final = head(write_to.grpc_target)
    wait_until(lambda: watcher.highest() >= final, 60, f"the subscriber to reach {final}")
    watcher.stop()
    assert watcher.reconnects >= 1  # it really lost the stream
    assert final - start >= 3 * len(paid)  # created, paid, fulfilled per paid order at least
    check_exactly_once_in_order(watcher.delivered, start, final)


def test_kill_9_mid_stream_during_a_payment_storm_loses_and_reorders_nothing(
    feed_stack: Stack, database_url: str, tmp_path: Path
) -> None:
    rid = secrets.token_hex(4)
    if not database_url.startswith("postgresql"):
        run_crash_drill(feed_stack, feed_stack, feed_stack, rid)
        return
    other = Stack(
        workdir=tmp_path / "second",
        database_url=database_url,
        keys=feed_stack.keys,
        sandbox_url=feed_stack.sandbox_url,
    )
    other.workdir.mkdir()
    other.start_server(api_tokens=TOKENS)
    try:  # the subscriber streams from `other`; the storm is written through the first server
        run_crash_drill(feed_stack, other, feed_stack, rid)
    finally:
        other.stop()
