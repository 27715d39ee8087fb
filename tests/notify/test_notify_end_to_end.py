"""The sidecar wired to the real App: a served socket, the real PaymentService, a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from server.adapters.tables import FulfilmentRow
from server.app import App
from server.domain.order import CreateOrder, Order, OrderStatus
from server.notify.sidecar import start_notify
from server.service.context import Caller
from tests.support.wechat import Delivery, WeChatNotifier, paid_resource

BFF = Caller("bff", "test")


@pytest.fixture(scope="module")
def sidecar(notify_app: App) -> Iterator[str]:
    server, port = start_notify(notify_app)
    yield f"http://127.0.0.1:{port}"
    server.stop()


def new_order(app: App, rid: str) -> Order:
    command = CreateOrder(request_id=f"r-{rid}", user_id=f"u-{rid}", product_id="vip-month", quantity=1)
    return app.orders.create_order(command, BFF).order


def deliver(base_url: str, delivery: Delivery) -> httpx.Response:
    return httpx.post(f"{base_url}/wxpay/notify", content=delivery.body, headers=delivery.headers, timeout=5)


def test_valid_notification_marks_the_order_paid_once(
    notify_app: App, sidecar: str, notifier: WeChatNotifier, rid: str
) -> None:
    order = new_order(notify_app, rid)
    delivery = notifier.deliver(paid_resource(order.out_trade_no, order.total_fee))
    assert deliver(sidecar, delivery).status_code == 204
    paid = notify_app.orders.get_order(order.order_id)
    assert paid.status is OrderStatus.PAID
    assert paid.paid_fee == order.total_fee
    assert deliver(sidecar, Delivery(notifier.sign(delivery.body), delivery.body)).status_code == 204
    with notify_app.db.connection_context():
        assert FulfilmentRow.select().where(FulfilmentRow.order_id == order.order_id).count() == 1
    assert notify_app.orders.get_order(order.order_id).version == paid.version


def test_amount_mismatch_is_recorded_and_acknowledged(
    notify_app: App, sidecar: str, notifier: WeChatNotifier, rid: str
) -> None:
    order = new_order(notify_app, rid)
    delivery = notifier.deliver(paid_resource(order.out_trade_no, order.total_fee - 1))
    assert deliver(sidecar, delivery).status_code == 204
    held = notify_app.orders.get_order(order.order_id)
    assert held.fulfilment.value == "HELD"


def test_unknown_order_is_acknowledged(sidecar: str, notifier: WeChatNotifier, rid: str) -> None:
    assert deliver(sidecar, notifier.deliver(paid_resource(f"NOPE{rid}", 100))).status_code == 204


def test_forged_notification_changes_nothing(
    notify_app: App, sidecar: str, notifier: WeChatNotifier, rid: str
) -> None:
    order = new_order(notify_app, rid)
    genuine = notifier.deliver(paid_resource(order.out_trade_no, order.total_fee))
    forged = Delivery(notifier.sign(b"{}"), genuine.body)
    response = deliver(sidecar, forged)
    assert response.status_code == 401
    assert json.loads(response.content)["code"] == "FAIL"
    assert notify_app.orders.get_order(order.order_id).status is OrderStatus.UNPAID


def test_probes_over_a_real_socket(sidecar: str) -> None:
    assert httpx.get(f"{sidecar}/healthz").status_code == 200
    assert httpx.get(f"{sidecar}/readyz").status_code == 200
    # The internet-facing listener does not expose metrics; their own listener does.
    assert httpx.get(f"{sidecar}/metrics").status_code == 404


def test_metrics_have_their_own_listener(notify_app: App) -> None:
    server, _port = start_notify(notify_app)
    try:
        assert server.metrics_port is not None
        metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics")
        assert "orderpay_notifications_total" in metrics.text
    finally:
        server.stop()


def test_thread_server_stops_and_frees_its_port(notify_app: App) -> None:
    server, port = start_notify(notify_app)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
