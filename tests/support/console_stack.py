"""The whole stack in one process for console tests: sandbox thread, gRPC, notify sidecar, jobs and the
console on 127.0.0.1:0 (SQLite), and a way to make a HELD order through the real payment path."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiohttp import web

from clients.bench.procs import free_port
from sandbox.app import RunningSandbox, make_app, serve_in_thread
from sandbox.config import SandboxConfig
from sandbox.keys.accounts import AccountSpec, init_accounts, load_accounts
from sandbox.keys.bundle import init_bundle, load_credentials
from server.adapters.recon_tables import ReconExceptionRow
from server.adapters.sandbox_clock import SandboxClock
from server.domain.order import CreateOrder, Fulfilment, Order, OrderStatus
from server.domain.refund import RefundStatus
from server.lifecycle import Stack
from server.service.context import Caller
from tests.support.databases import sqlite_url
from tests.support.serving import whole_stack
from tests.support.settings import settings_for
from tests.support.waiting import wait_until

ADMIN_TOKEN, BFF_TOKEN = "test-admin-token", "test-bff-token"


@dataclass
class LiveStack:
    stack: Stack
    sandbox: RunningSandbox

    @property
    def grpc_target(self) -> str:
        assert self.stack.grpc is not None
        return f"127.0.0.1:{self.stack.grpc.port}"

    @property
    def console_url(self) -> str:
        assert self.stack.console_url is not None
        return self.stack.console_url.rstrip("/")

    def control(self, path: str, body: dict[str, object] | None = None) -> None:
        response = httpx.post(f"{self.sandbox.base_url}/sandbox/v1/{path}", json=body or {}, timeout=10)
        response.raise_for_status()

    def order(self, order_id: str) -> Order:
        return self.stack.app.orders.get_order(order_id)

    def held_order(self, user: str | None = None) -> Order:
        """A VIP order the sandbox pays 1 fen short: the notification leaves it HELD / AMOUNT_MISMATCH."""
        app = self.stack.app
        caller = Caller("bff", "test")
        order = app.orders.create_order(
            CreateOrder("k", user or f"u-{secrets.token_hex(4)}", "vip-month", 1), caller
        ).order
        assert app.payments is not None
        app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, caller)
        self.control(f"orders/{order.out_trade_no}/faults", {"wrong_amount_delta": -1})
        self.control(f"orders/{order.out_trade_no}/pay")
        wait_until(lambda: self.order(order.order_id).fulfilment is Fulfilment.HELD, 20, "a HELD order")
        return self.order(order.order_id)

    def paid_order(self) -> Order:
        """A VIP order paid in full through the sandbox."""
        app = self.stack.app
        caller = Caller("bff", "test")
        assert app.payments is not None
        order = app.orders.create_order(
            CreateOrder("k", f"u-{secrets.token_hex(4)}", "vip-month", 1), caller
        ).order
        app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, caller)
        self.control(f"orders/{order.out_trade_no}/pay")
        wait_until(lambda: self.order(order.order_id).status is OrderStatus.PAID, 20, "a PAID order")
        return self.order(order.order_id)

    def abnormal_refund(self, order: Order) -> str:
        """A refund of everything paid that WeChat Pay could not pay back to the card (退款异常)."""
        assert self.stack.app.payments is not None
        refunds, caller = self.stack.app.payments.refunds, Caller("admin", "test")
        no = "RAB" + secrets.token_hex(6)
        config = f"{self.sandbox.base_url}/sandbox/v1/config"
        httpx.put(config, json={"refund_settle_status": "ABNORMAL"}, timeout=10).raise_for_status()
        try:
            refunds.refund_order(order.order_id, no, order.paid_fee, "customer asked", caller)
            wait_until(
                lambda: refunds.sync_refund(no, caller).status is RefundStatus.ABNORMAL, 20, "ABNORMAL"
            )
        finally:
            httpx.put(config, json={"refund_settle_status": "SUCCESS"}, timeout=10).raise_for_status()
        return no

    def recon_exception(self, order: Order, kind: str = "AMOUNT_MISMATCH") -> int:
        """An open reconciliation exception naming `order`: WeChat's bill says 1 fen less."""
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.stack.app.db.connection_context():
            row = ReconExceptionRow.create(
                bill_date="2026-12-07", kind=kind, out_trade_no=order.out_trade_no, out_refund_no="",
                local_fen=order.paid_fee, remote_fen=order.paid_fee - 1, status="OPEN",
                detail="paid amount differs from the bill's 订单金额", created_at=now, updated_at=now,
            )  # fmt: skip
        return int(row.id)


def sign_in(client: httpx.Client, token: str) -> httpx.Response:
    """Sign in as a browser would: read the form's CSRF token, post it with `token`."""
    form = client.get("/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    return client.post("/sign-in", data={"csrf": csrf.group(1), "token": token})


def load_accounts_specs(keys: Path) -> list[AccountSpec]:
    init_accounts(keys)
    return load_accounts(keys)


@contextmanager
def live_stack(
    tmp_path: Path,
    *,
    extend_sandbox: Callable[[web.Application], None] | None = None,
    accounts: bool = False,
    **overrides: object,
) -> Iterator[LiveStack]:
    """`extend_sandbox` may add routes to the sandbox app before it starts (e.g. a fake clock).
    `accounts`: the demo set of merchant accounts (issue 18) instead of the one bundle."""
    keys = tmp_path / "keys"
    if accounts:
        specs = load_accounts_specs(keys)
        primary = next(spec.credentials for spec in specs if spec.credentials is not None)
        config = SandboxConfig(credentials=primary, accounts=tuple(specs), time_scale=0.01)
    else:
        init_bundle(keys)
        config = SandboxConfig(credentials=load_credentials(keys), time_scale=0.01)
    app = make_app(config)
    if extend_sandbox is not None:
        extend_sandbox(app)
    sandbox = RunningSandbox(serve_in_thread(app))
    notify_port = free_port()
    settings = settings_for(
        sqlite_url(tmp_path),
        credentials_dir=str(keys),
        wxpay_base_url=sandbox.base_url,
        notify_listen=f"127.0.0.1:{notify_port}",
        notify_url=f"http://127.0.0.1:{notify_port}/wxpay/notify",
        console_listen="127.0.0.1:0",
        job_interval_s=0.2,
        refund_poll_schedule_s=(1.0,),
    ).with_overrides(**overrides)
    app, serving = whole_stack(settings)
    try:
        yield LiveStack(serving.stack, sandbox)
    finally:
        serving.stop(2)
        if isinstance(app.clock, SandboxClock):
            app.clock.stop()
        app.close()
        sandbox.stop()
