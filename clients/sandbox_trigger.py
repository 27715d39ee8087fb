"""`orderpay sandbox trigger EVENT`: stage one payment scenario end to end against a running dev stack,
in the spirit of `stripe trigger` (issue 13). Each event makes a fresh order through orderpay's gRPC API,
drives the sandbox's control API, waits for orderpay to react, and prints what happened (or `--json`).

Events: transaction.success, refund.success, refund.abnormal, refund.closed, duplicate (a storm of
concurrent copies of one notification), late-payment (paid after the merchant closed), signtest (a
`WECHATPAY/SIGNTEST/` probe before the real notification). Dev only: the sandbox on loopback.
"""

# ruff: noqa: PLC0415 - handlers import the client lazily so `orderpay --help` stays fast

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

EVENTS = (
    "transaction.success",
    "refund.success",
    "refund.abnormal",
    "refund.closed",
    "duplicate",
    "late-payment",
    "signtest",
)
DEFAULT_TARGET = "127.0.0.1:50051"
DEV_ADMIN_TOKEN = "dev-admin-token"  # noqa: S105 - the public dev token of server/config.py
WAIT_S = 20.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `trigger` under the sandbox part's `orderpay sandbox` (registered before this module)."""
    sandbox = sub.choices.get("sandbox")
    if sandbox is None:  # a parser built without the sandbox part (some tests build one per part)
        return
    # One sub-command group per parser: share the one `clock` already opened.
    actions = next(
        (a for a in sandbox._actions if isinstance(a, argparse._SubParsersAction)),
        None,
    ) or sandbox.add_subparsers(dest="sandbox_command")
    actions.metavar = "[clock|trigger]"
    trigger = actions.add_parser("trigger", help="stage a payment scenario against a running dev stack")
    trigger.add_argument("event", choices=EVENTS, help="the scenario to stage")
    trigger.add_argument(
        "--sandbox-url", default="http://127.0.0.1:8090", help="the sandbox (default %(default)s)"
    )
    trigger.add_argument("--target", help=f"orderpay gRPC (env ORDERPAY_GRPC_TARGET, else {DEFAULT_TARGET})")
    trigger.add_argument("--token", help="admin token (env ORDERPAY_TOKEN, else the dev admin token)")
    trigger.add_argument("--user-id", default="trigger-user", help="the buyer (default %(default)s)")
    trigger.add_argument("--product", default="vip-month", help="what is bought (default %(default)s)")
    trigger.add_argument(
        "--copies",
        type=int,
        default=5,
        help="duplicate: extra copies of the notification (default %(default)s)",
    )
    trigger.add_argument("--json", action="store_true", help="print the result as JSON")
    trigger.set_defaults(func=_trigger)


class Trigger:
    def __init__(self, client: Any, sandbox_url: str, user_id: str, product: str) -> None:
        import httpx

        self.client = client
        self.http = httpx.Client(base_url=f"{sandbox_url.rstrip('/')}/sandbox/v1/", timeout=10)
        self.user_id, self.product = user_id, product

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        if response.is_error:
            raise RuntimeError(f"sandbox {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def new_prepaid_order(self) -> Any:
        order = self.client.create_order(self.user_id, self.product, request_id=secrets.token_hex(8)).order
        self.client.create_payment(order.order_id, "NATIVE")
        return order

    def deliveries(self, out_trade_no: str) -> list[dict[str, Any]]:
        attempts = self.control("GET", "notifications")["attempts"]
        return [
            {k: a[k] for k in ("event_type", "kind", "copy", "attempt", "status")}
            for a in attempts
            if a["out_trade_no"] == out_trade_no
        ]

    def wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up after {WAIT_S:g} s waiting for {what}")
            time.sleep(0.1)  # polling a remote stack from a CLI

    def report(self, order_id: str, **extra: Any) -> dict[str, Any]:
        from clients.views import enum_label

        order = self.client.get_order(order_id)
        self.wait(
            lambda: all(d["status"] or d["kind"] == "dropped" for d in self.deliveries(order.out_trade_no)),
            "the answers",
        )
        return {
            "order_id": order.order_id,
            "out_trade_no": order.out_trade_no,
            "status": enum_label(order, "status"),
            "fulfilment": enum_label(order, "fulfilment"),
            "fulfilment_reason": order.fulfilment_reason,
            "deliveries": self.deliveries(order.out_trade_no),
            **extra,
        }

    # --- events -------------------------------------------------------------------------------------
    def transaction_success(self) -> dict[str, Any]:
        order = self.new_prepaid_order()
        self.control("POST", f"orders/{order.out_trade_no}/pay")
        self.client.get_order(order.order_id, wait_ms=int(WAIT_S * 1000), timeout=WAIT_S + 5)
        return self.report(order.order_id)

    def refund(self, status: str) -> dict[str, Any]:
        paid = self.transaction_success()
        previous = self.control("GET", "config")["refund_settle_status"]
        self.control("PUT", "config", {"refund_settle_status": status})
        out_refund_no = "TRG" + secrets.token_hex(8)
        try:
            order = self.client.get_order(paid["order_id"])
            self.client.refund_order(
                order.order_id, out_refund_no, order.paid_fee, f"trigger refund.{status.lower()}"
            )
            self.wait(
                lambda: _refund_status(self.client, out_refund_no) != "PROCESSING", "the refund to settle"
            )
        finally:
            self.control("PUT", "config", {"refund_settle_status": previous})
        return self.report(
            paid["order_id"], refund=out_refund_no, refund_status=_refund_status(self.client, out_refund_no)
        )

    def duplicate(self, copies: int) -> dict[str, Any]:
        order = self.new_prepaid_order()
        self.control("POST", f"orders/{order.out_trade_no}/faults", {"duplicate_notifications": copies})
        self.control("POST", f"orders/{order.out_trade_no}/pay")
        self.wait(
            lambda: len([d for d in self.deliveries(order.out_trade_no) if d["status"]]) > copies,
            "every copy",
        )
        self.client.get_order(order.order_id, wait_ms=int(WAIT_S * 1000), timeout=WAIT_S + 5)
        return self.report(order.order_id)

    def late_payment(self) -> dict[str, Any]:
        order = self.new_prepaid_order()
        self.client.close_order(order.order_id)  # closes at the sandbox first
        self.control("POST", f"dev/orders/{order.out_trade_no}/late-pay")
        self.wait(
            lambda: self.client.get_order(order.order_id).transaction_id != "", "the late payment to land"
        )
        return self.report(order.order_id)

    def signtest(self) -> dict[str, Any]:
        order = self.new_prepaid_order()
        self.control("POST", f"orders/{order.out_trade_no}/faults", {"signtest_probe": True})
        self.control("POST", f"orders/{order.out_trade_no}/pay")
        self.wait(
            lambda: len([d for d in self.deliveries(order.out_trade_no) if d["status"]]) >= 2,
            "probe and payment",
        )
        return self.report(order.order_id)

    def run(self, event: str, copies: int) -> dict[str, Any]:
        if event.startswith("refund."):
            result = self.refund(event.removeprefix("refund.").upper())
        elif event == "duplicate":
            result = self.duplicate(copies)
        elif event == "late-payment":
            result = self.late_payment()
        elif event == "signtest":
            result = self.signtest()
        else:
            result = self.transaction_success()
        return {"event": event, **result}


def _refund_status(client: Any, out_refund_no: str) -> str:
    from orderpay.v1 import pay_service_pb2

    name: str = pay_service_pb2.RefundStatus.Name(client.get_refund(out_refund_no).status)
    return name.removeprefix("REFUND_STATUS_")


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere, so it is not taken for loopback


def refuse_non_dev(target: str, sandbox_url: str) -> str:
    """Why this is not a loopback sandbox stack (the audit's M2: a trigger aimed at a production-
    configured server made real orders), or "" when it is: gRPC and the sandbox on loopback, and a
    sandbox answering its control API at --sandbox-url."""
    host = target.removeprefix("dns:").removeprefix("ipv4:").removeprefix("ipv6:").rpartition(":")[0]
    if not _is_loopback(host):
        return f"--target {target} is not on loopback: trigger stages payments on a dev stack only"
    if not _is_loopback(urlsplit(sandbox_url).hostname or ""):
        return f"--sandbox-url {sandbox_url} is not on loopback: trigger drives a dev sandbox only"
    import httpx

    try:
        answer = httpx.get(f"{sandbox_url.rstrip('/')}/sandbox/v1/clock", timeout=5, trust_env=False)
        answered = answer.status_code == 200 and "now" in answer.json()
    except (httpx.HTTPError, ValueError):
        answered = False
    if not answered:
        return f"--sandbox-url {sandbox_url}: no sandbox answers there (start one with `orderpay dev`)"
    return ""


def _trigger(args: argparse.Namespace) -> int:
    from clients.client import OrderPayClient
    from clients.errors import OrderPayError
    from clients.reporting import report_error

    target = args.target or os.environ.get("ORDERPAY_GRPC_TARGET") or DEFAULT_TARGET
    token = args.token or os.environ.get("ORDERPAY_TOKEN") or DEV_ADMIN_TOKEN
    refusal = refuse_non_dev(target, args.sandbox_url)
    if refusal:
        print(f"orderpay sandbox trigger: {refusal}", file=sys.stderr)
        return 2
    try:
        with OrderPayClient(target, token, default_timeout=10) as client:
            trigger = Trigger(client, args.sandbox_url, args.user_id, args.product)
            try:
                result = trigger.run(args.event, args.copies)
            finally:
                trigger.http.close()
    except OrderPayError as err:
        return report_error(err)
    except (RuntimeError, TimeoutError) as exc:
        print(f"orderpay sandbox trigger: {exc}")
        return 1
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    print(f"{result['event']}: order {result['order_id']} ({result['out_trade_no']})")
    print(f"  now {result['status']} / {result['fulfilment']} {result['fulfilment_reason']}".rstrip())
    if "refund" in result:
        print(f"  refund {result['refund']}: {result['refund_status']}")
    for d in result["deliveries"]:
        print(
            f"  {d['event_type']} {d['kind']} copy {d['copy']} attempt {d['attempt']} -> HTTP {d['status']}"
        )
    return 0
