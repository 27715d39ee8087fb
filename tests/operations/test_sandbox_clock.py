"""`ORDERPAY_CLOCK=sandbox`: orderpay follows `GET /sandbox/v1/clock`, so advancing the sandbox's clock
(`POST /sandbox/v1/clock`) fires expiry and the reconciler end to end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from server.adapters.sandbox_clock import SandboxClock, clock_for
from server.config import ConfigError, Settings
from server.domain.clock import utc_now
from server.domain.order import CreateOrder, OrderStatus
from server.service.context import Caller
from tests.support.console_stack import LiveStack, live_stack
from tests.support.waiting import wait_until

BFF = Caller("bff", "clock-test")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("clock"), clock="sandbox") as running:
        yield running


def sandbox_now(live: LiveStack) -> datetime:
    answer = httpx.get(f"{live.sandbox.base_url}/sandbox/v1/clock", timeout=5).json()
    return datetime.fromisoformat(answer["now"])


def advance(live: LiveStack, by: timedelta) -> None:
    """POST /sandbox/v1/clock, then wait for orderpay's clock to follow."""
    live.control("clock", {"advance_s": by.total_seconds()})
    clock = live.stack.app.clock
    wait_until(
        lambda: abs((clock() - sandbox_now(live)).total_seconds()) < 1,
        10,
        "orderpay to follow the sandbox clock",
    )


def test_advancing_the_sandbox_clock_expires_an_unpaid_order(live: LiveStack) -> None:
    assert isinstance(live.stack.app.clock, SandboxClock)
    app = live.stack.app
    order = app.orders.create_order(CreateOrder("k", "clock-user-1", "vip-month", 1), BFF).order
    assert app.payments is not None
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    advance(live, timedelta(seconds=app.settings.order_ttl_s + 120))
    wait_until(lambda: live.order(order.order_id).status is OrderStatus.CLOSED, 20, "the expiry job")


def test_advancing_it_lets_the_reconciler_find_a_payment_whose_notification_was_lost(live: LiveStack) -> None:
    app = live.stack.app
    order = app.orders.create_order(CreateOrder("k", "clock-user-2", "vip-month", 1), BFF).order
    assert app.payments is not None
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    live.control(f"orders/{order.out_trade_no}/faults", {"notify_drop_rate": 1.0})
    live.control(f"orders/{order.out_trade_no}/pay")
    assert live.order(order.order_id).status is OrderStatus.UNPAID  # the notification never comes
    advance(live, timedelta(seconds=app.settings.reconcile_schedule_s[0] + 30))
    wait_until(lambda: live.order(order.order_id).status is OrderStatus.PAID, 20, "the reconciler")


def test_the_sandbox_clock_is_refused_unless_the_gateway_is_loopback() -> None:
    assert clock_for(Settings()) is utc_now
    with pytest.raises(ConfigError, match="dev only"):
        clock_for(Settings(clock="sandbox", wxpay_base_url="https://api.mch.weixin.qq.com"))
    with pytest.raises(ConfigError, match="dev only"):
        clock_for(Settings(clock="sandbox", wxpay_base_url="http://10.1.2.3:8090"))
    with pytest.raises(ConfigError, match="ORDERPAY_CLOCK"):
        clock_for(Settings(clock="martian"))


def test_a_gateway_without_the_clock_endpoint_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="/sandbox/v1/clock"):  # nothing listens on port 9
        clock_for(Settings(clock="sandbox", wxpay_base_url="http://127.0.0.1:9"))
