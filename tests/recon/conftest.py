"""Reconciliation fixtures: per test, a fresh sandbox whose clock starts on a day of its own, and the
payment, refund and reconciliation services of a per-module App (SQLite and PostgreSQL) wired to it.

orderpay's clock follows the sandbox's, one second behind: what makes a refund written at 23:59:59.5
reach WeChat at 00:00:00.5, the day-cut crossing the tests need.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.app import RunningSandbox, RunningServer, make_app, serve_in_thread
from sandbox.config import Faults, SandboxConfig
from sandbox.engine.clock import SandboxClock
from sandbox.keys.bundle import init_bundle, load_credentials
from sandbox.testing import MerchantCaller
from server.adapters.recon_store import PeeweeReconStore
from server.app import App
from server.bootstrap import build_app
from server.domain.order import CreateOrder, Order
from server.domain.reconciliation import BEIJING
from server.domain.refund import Refund, RefundStatus
from server.service.context import Caller
from server.service.payments import PaymentService
from server.service.reconciliation import ReconciliationService
from server.service.refunds import RefundService
from tests.conftest import settings_for
from tests.support.waiting import wait_until

BFF = Caller("bff", "t")
_DAYS = itertools.count(1)


class FollowingClock:
    """orderpay's clock in these tests: the current sandbox's clock minus a skew."""

    def __init__(self) -> None:
        self.target: SandboxClock = SandboxClock()
        self.skew = timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.target() - self.skew


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("recon-keys")
    init_bundle(directory)
    return directory


@pytest.fixture(scope="module")
def clock() -> FollowingClock:
    return FollowingClock()


@pytest.fixture(scope="module")
def recon_database(database_url: str) -> str:
    return database_url


@dataclass
class World:
    app: App
    sandbox: RunningSandbox
    clock: SandboxClock
    payments: PaymentService
    refunds: RefundService
    recon: ReconciliationService
    store: PeeweeReconStore
    day: date
    merchant: MerchantCaller  # calls WeChat directly, as a person at the merchant portal would

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.sandbox.base_url}/sandbox/v1/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def at(self, day: date, hh: int, mm: int, ss: float = 0) -> None:
        """Move the sandbox (and so orderpay) forward to that Beijing time."""
        when = datetime.combine(day, time(hh, mm), tzinfo=BEIJING) + timedelta(seconds=ss)
        self.clock.set(when)

    def open_bills(self, day: date) -> None:
        self.at(day + timedelta(days=1), 10, 0, 1)

    def order(self, product: str = "vip-month") -> Order:
        return self.app.orders.create_order(
            CreateOrder(secrets.token_hex(8), "u" + secrets.token_hex(6), product, 1), BFF
        ).order

    def prepaid(self) -> Order:
        order = self.order()
        self.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
        return order

    def pay_at_wechat(self, order: Order) -> None:
        self.control("POST", f"orders/{order.out_trade_no}/pay")

    def paid(self) -> Order:
        """Paid at WeChat and known locally (the payment query path, as the reconciler would)."""
        order = self.prepaid()
        self.pay_at_wechat(order)
        synced = self.payments.sync_payment(order.order_id, BFF)
        assert synced.transaction_id
        return synced

    def refund(self, order: Order, amount: int, out_refund_no: str | None = None) -> Refund:
        no = out_refund_no or "R" + secrets.token_hex(8)
        self.refunds.refund_order(order.order_id, no, amount, "test", BFF)
        return self.settled(no)

    def settled(self, out_refund_no: str) -> Refund:
        result: list[Refund] = []

        def done() -> bool:
            refund = self.refunds.sync_refund(out_refund_no, BFF)
            result.append(refund)
            return refund.status is RefundStatus.SUCCESS

        wait_until(done, 10, f"refund {out_refund_no} SUCCESS")
        return result[-1]


@pytest.fixture
def make_world(recon_database: str, keys: Path, clock: FollowingClock) -> Iterator[Callable[..., World]]:
    started: list[tuple[RunningServer, App]] = []
    callers: list[MerchantCaller] = []

    def make(hh: int = 12, mm: int = 0, **sandbox_settings: Any) -> World:
        # Each world starts on a Beijing day no other test of the module uses.
        day = datetime.now(UTC).astimezone(BEIJING).date() + timedelta(days=3 * next(_DAYS))
        sandbox_clock = SandboxClock(start=datetime.combine(day, time(hh, mm), tzinfo=BEIJING))
        config = SandboxConfig(
            credentials=load_credentials(keys),
            time_scale=0.001,
            faults=Faults(notify_drop_rate=1.0),  # no notifications: orderpay learns by querying
            **sandbox_settings,
        )
        server = serve_in_thread(make_app(config, sandbox_clock))
        clock.target = sandbox_clock
        # The whole composition root, pointed at this world's sandbox (prompt fulfilment off: no jobs run).
        settings = settings_for(
            recon_database,
            credentials_dir=str(keys),
            wxpay_base_url=server.base_url,
            notify_url="http://127.0.0.1:9/notify",
        )
        app = build_app(settings, clock=clock, prompt_fulfilment=False)
        app.catalogue.load_file()
        started.append((server, app))
        part = app.payments
        assert part is not None
        merchant_caller = MerchantCaller(server.base_url, load_credentials(keys))
        callers.append(merchant_caller)
        return World(
            app,
            RunningSandbox(server),
            sandbox_clock,
            part.payments,
            part.refunds,
            part.reconciliation,
            PeeweeReconStore(),
            day,
            merchant_caller,
        )

    yield make
    for caller in callers:
        caller.close()
    for server, app in started:
        app.close()
        server.stop()
