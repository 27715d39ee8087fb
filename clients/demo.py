"""`orderpay demo`: a scripted VIP purchase against a running stack, each step printed."""

from __future__ import annotations

import time
import uuid

import httpx

from clients.client import OrderPayClient
from clients.views import yuan
from orderpay.v1 import order_pb2

DONE = (order_pb2.FULFILMENT_SUCCEEDED, order_pb2.FULFILMENT_FAILED, order_pb2.FULFILMENT_HELD)


def cashier_url(sandbox_url: str, code_url: str) -> str:
    """The sandbox serves the page a real QR code would open: code_url's `pr` token is the key."""
    token = code_url.rsplit("pr=", 1)[-1]
    return f"{sandbox_url}/sandbox/cashier/{token}"


def run_demo(
    target: str,
    token: str,
    sandbox_url: str,
    user_id: str,
    plan_id: str,
    manual: bool,
    merchant: str | None = None,
) -> int:
    """`merchant`: the account to buy through (a configured account's name); None: the server's rule."""
    with OrderPayClient(target, token) as client:
        plans = client.list_plans()
        step(
            1,
            "VIP plans",
            ", ".join(f"{p.product_id} ({yuan(p.price_fen)}, {p.duration_days} d)" for p in plans),
        )
        before = client.get_membership(user_id)
        step(2, "membership before", _membership(before))
        created = client.create_order(user_id, plan_id, request_id=uuid.uuid4().hex, merchant=merchant)
        order = created.order
        step(3, "order", f"{order.order_id} out_trade_no={order.out_trade_no} total {yuan(order.total_fee)}")
        step(3, "account", order.account or "default")
        payment = client.create_payment(order.order_id, "NATIVE")
        url = cashier_url(sandbox_url, payment.code_url)
        step(4, "prepay", f"prepay_id={payment.prepay_id} code_url={payment.code_url}")
        step(4, "cashier page", url)
        if manual:
            step(5, "pay", f"open {url} in a browser and click Pay")
        else:
            httpx.post(
                f"{sandbox_url}/sandbox/v1/orders/{order.out_trade_no}/pay", timeout=5
            ).raise_for_status()
            step(5, "pay", "the sandbox paid the order (the cashier page's Pay button does the same)")
        started = time.monotonic()
        final = client.get_order(order.order_id, wait_ms=20_000)
        while manual and final.fulfilment not in DONE:
            final = client.get_order(order.order_id, wait_ms=20_000)
        waited = time.monotonic() - started
        status = order_pb2.OrderStatus.Name(final.status)
        fulfilment = order_pb2.Fulfilment.Name(final.fulfilment)
        step(6, "notification", _deliveries(sandbox_url, order.out_trade_no))
        step(6, "order", f"{status}, fulfilment {fulfilment} after {waited:.2f} s")
        after = client.get_membership(user_id)
        step(7, "membership after", _membership(after))
    return 0 if final.fulfilment == order_pb2.FULFILMENT_SUCCEEDED else 1


def _deliveries(sandbox_url: str, out_trade_no: str) -> str:
    """What the sandbox sent to the sidecar for this order, and what it answered."""
    attempts = httpx.get(f"{sandbox_url}/sandbox/v1/notifications", timeout=5).json()["attempts"]
    mine = [a for a in attempts if a["out_trade_no"] == out_trade_no]
    return ", ".join(f"{a['event_type']} -> HTTP {a['status']}" for a in mine) or "none yet"


def step(number: int, title: str, detail: str) -> None:
    print(f"[{number}] {title:<22} {detail}", flush=True)


def _membership(m: object) -> str:
    active = getattr(m, "active", False)
    expires = getattr(m, "expires_at", None)
    when = expires.ToDatetime().isoformat() if expires is not None and expires.seconds else "-"
    return f"active={active} expires_at={when}"
