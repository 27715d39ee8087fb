"""A reconciliation world: one App wired to a sandbox whose clock orderpay follows, and the steps the
reconciliation tests take in it (order, prepay, pay at WeChat, refund, open the day's bills)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx

from sandbox.app import RunningSandbox
from sandbox.clock import SandboxClock
from sandbox.testing import MerchantCaller
from server.adapters.recon_store import PeeweeReconStore
from server.app import App
from server.domain.order import CreateOrder, Order
from server.domain.reconciliation import BEIJING
from server.domain.refund import Refund, RefundStatus
from server.service.context import Caller
from server.service.payments import PaymentService
from server.service.reconciliation import ReconciliationService
from server.service.refunds import RefundService
from tests.support.waiting import wait_until

BFF = Caller("bff", "t")


class FollowingClock:
    """orderpay's clock in these tests: the current sandbox's clock minus a skew."""

    def __init__(self) -> None:
        self.target: SandboxClock = SandboxClock()
        self.skew = timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.target() - self.skew


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
