"""B7's path in one process: a signed payment notification to the sidecar fulfils the order and wakes the
GetOrder(wait_ms) parked on it, through the FulfilmentDecided signal. The fallbacks are out of reach:
the fulfilment job runs once an hour here and the waiter's own deadline is 20 s, so an answer that
comes back SUCCEEDED and counted `by="signal"` came from the prompt path (no timing is asserted)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from orderpay.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc
from server.app import App
from server.bootstrap import build_app
from server.domain.order import CreateOrder
from server.service.context import Caller
from tests.support.serving import ServingThread
from tests.support.settings import settings_for
from tests.support.tokens import BFF
from tests.support.waiting import wait_until
from tests.support.wechat import WeChatNotifier, paid_resource

LONG_WAIT_MS = 20_000  # the most a caller may ask
DEADLINE_S = 15.0  # the call's own deadline, under LONG_WAIT_MS: a timed-out wait cannot answer in time
HOURS_S = 3 * 3600.0


@pytest.fixture(scope="module")
def slow_jobs_app(database_url: str, bundle_dir: Path) -> Iterator[App]:
    settings = settings_for(database_url, credentials_dir=str(bundle_dir), job_interval_s=HOURS_S)
    application = build_app(settings)
    application.catalogue.load_file()
    yield application
    application.close()


@pytest.fixture(scope="module")
def serving(slow_jobs_app: App) -> Iterator[ServingThread]:
    server = ServingThread(slow_jobs_app, notify=True, jobs=True)
    yield server
    server.stop(1)


def test_a_paid_notification_wakes_the_parked_waiter_by_its_signal(
    slow_jobs_app: App, serving: ServingThread, notifier: WeChatNotifier, rid: str
) -> None:
    command = CreateOrder(request_id=f"r-{rid}", user_id=f"u-{rid}", product_id="vip-month", quantity=1)
    order = slow_jobs_app.orders.create_order(command, Caller("bff", "test")).order
    before = serving.on_loop(lambda: Counter(serving.stack.waiters.answers))
    with grpc.insecure_channel(f"127.0.0.1:{serving.port}") as channel:
        orders = order_service_pb2_grpc.OrderServiceStub(channel)
        request = order_service_pb2.GetOrderRequest(order_id=order.order_id, wait_ms=LONG_WAIT_MS)
        waiting = orders.GetOrder.future(request, metadata=BFF, timeout=DEADLINE_S)
        wait_until(lambda: serving.on_loop(lambda: serving.stack.waiters.waiting) == 1, what="the park")
        delivery = notifier.deliver(paid_resource(order.out_trade_no, order.total_fee))
        url = f"http://127.0.0.1:{serving.stack.notify_port}/wxpay/notify"
        assert httpx.post(url, content=delivery.body, headers=delivery.headers, timeout=10).status_code == 204
        answer = waiting.result()
    assert answer.order.status == order_pb2.ORDER_STATUS_PAID
    assert answer.order.fulfilment == order_pb2.FULFILMENT_SUCCEEDED
    answered = serving.on_loop(lambda: Counter(serving.stack.waiters.answers)) - before
    assert answered == Counter(signal=1)  # not its deadline, not a job hours away
