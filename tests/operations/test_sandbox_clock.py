"""`ORDERPAY_CLOCK=sandbox`: orderpay follows `GET /sandbox/v1/clock`, so advancing it fires expiry and
the reconciler end to end. The sandbox in this branch has no clock yet (the reconciliation issue adds
it), so the test adds a tiny one to the real sandbox app: `{"now": RFC 3339}`, advanced by the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from server.adapters.sandbox_clock import SandboxClock, clock_for
from server.config import ConfigError, Settings
from server.domain.clock import utc_now
from server.domain.order import CreateOrder, OrderStatus
from server.service.context import Caller
from tests.support.console_stack import LiveStack, live_stack
from tests.support.waiting import wait_until

BFF = Caller("bff", "clock-test")


class FakeClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def install(self, app: web.Application) -> None:
        async def clock(request: web.Request) -> web.Response:
            return web.json_response({"now": self.now().isoformat().replace("+00:00", "Z")})

        app.router.add_get("/sandbox/v1/clock", clock)


@pytest.fixture(scope="module")
def fake() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, fake: FakeClock) -> Iterator[LiveStack]:
    with live_stack(
        tmp_path_factory.mktemp("clock"), extend_sandbox=fake.install, clock="sandbox"
    ) as running:
        yield running


def advance(live: LiveStack, fake: FakeClock, by: timedelta) -> None:
    fake.offset += by
    clock = live.stack.app.clock
    wait_until(
        lambda: abs((clock() - fake.now()).total_seconds()) < 1, 10, "orderpay to follow the sandbox clock"
    )


def test_advancing_the_sandbox_clock_expires_an_unpaid_order(live: LiveStack, fake: FakeClock) -> None:
    assert isinstance(live.stack.app.clock, SandboxClock)
    app = live.stack.app
    order = app.orders.create_order(CreateOrder("k", "clock-user-1", "vip-month", 1), BFF).order
    assert app.payments is not None
    app.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    advance(live, fake, timedelta(seconds=app.settings.order_ttl_s + 120))
    wait_until(lambda: live.order(order.order_id).status is OrderStatus.CLOSED, 20, "the expiry job")


def test_advancing_it_lets_the_reconciler_find_a_payment_whose_notification_was_lost(
    live: LiveStack, fake: FakeClock
) -> None:
    app = live.stack.app
    order = app.orders.create_order(CreateOrder("k", "clock-user-2", "vip-month", 1), BFF).order
    assert app.payments is not None
    app.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    live.control(f"orders/{order.out_trade_no}/faults", {"notify_drop_rate": 1.0})
    live.control(f"orders/{order.out_trade_no}/pay")
    assert live.order(order.order_id).status is OrderStatus.UNPAID  # the notification never comes
    advance(live, fake, timedelta(seconds=app.settings.reconcile_schedule_s[0] + 30))
    wait_until(lambda: live.order(order.order_id).status is OrderStatus.PAID, 20, "the reconciler")


def test_the_sandbox_clock_is_refused_unless_the_gateway_is_loopback() -> None:
    assert clock_for(Settings()) is utc_now
    with pytest.raises(ConfigError, match="dev only"):
        clock_for(Settings(clock="sandbox", wxpay_base_url="https://api.mch.weixin.qq.com"))
    with pytest.raises(ConfigError, match="dev only"):
        clock_for(Settings(clock="sandbox", wxpay_base_url="http://10.1.2.3:8090"))
    with pytest.raises(ConfigError, match="ORDERPAY_CLOCK"):
        clock_for(Settings(clock="martian"))


def test_a_sandbox_without_the_clock_endpoint_is_a_configuration_error(tmp_path: Path) -> None:
    with live_stack(tmp_path) as plain, pytest.raises(ConfigError, match="/sandbox/v1/clock"):
        clock_for(Settings(clock="sandbox", wxpay_base_url=plain.sandbox.base_url))
