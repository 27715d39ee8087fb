"""An ABNORMAL refund end to end: WeChat Pay cannot reach the payer's card, an operator re-routes the
money (apply-abnormal-refund, card details encrypted), and the refund completes exactly once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clients.client import OrderPayClient
from clients.errors import OrderPayError
from orderpay.v1 import order_pb2, pay_service_pb2
from tests.support.purchase import buy
from tests.support.stack import ADMIN_TOKEN, ROOT, Stack
from tests.support.waiting import wait_until


@pytest.fixture
def abnormal_refunds(stack: Stack) -> object:
    stack.control("PUT", "config", {"refund_settle_status": "ABNORMAL"})
    yield None
    stack.control("PUT", "config", {"refund_settle_status": "SUCCESS"})


@pytest.mark.parametrize("route", ["USER_BANK_CARD", "MERCHANT_BANK_CARD"])
def test_an_abnormal_refund_is_resolved_and_completes_once(
    bff: OrderPayClient, admin: OrderPayClient, stack: Stack, rid: str, abnormal_refunds: object, route: str
) -> None:
    order = buy(bff, stack, f"e2e-{rid}")
    no = f"RAB{rid}"
    admin.refund_order(order.order_id, no, order.total_fee, "customer asked")

    def status() -> int:
        return admin.get_refund(no, sync=True).status

    wait_until(lambda: status() == pay_service_pb2.REFUND_STATUS_ABNORMAL, 20, "refund ABNORMAL")
    with pytest.raises(OrderPayError) as again:  # the money is still the payer's: not refundable twice
        admin.refund_order(order.order_id, f"RAB2{rid}", order.total_fee, "again")
    assert again.value.reason == "REFUND_EXCEEDS_PAID"
    with pytest.raises(OrderPayError) as denied:
        bff.resolve_abnormal_refund(no, "MERCHANT_BANK_CARD", "not mine to do")
    assert denied.value.reason == "PERMISSION_DENIED"

    stack.control("PUT", "config", {"refund_settle_status": "SUCCESS"})
    card = ("ICBC_DEBIT", "6222020200112233445", "张三") if route == "USER_BANK_CARD" else ("", "", "")
    reopened = admin.resolve_abnormal_refund(no, route, "card closed; ticket 42", *card)  # type: ignore[arg-type]
    assert reopened.status == pay_service_pb2.REFUND_STATUS_PROCESSING
    wait_until(
        lambda: bff.get_order(order.order_id).status == order_pb2.ORDER_STATUS_REFUNDED, 30, "refund SUCCESS"
    )
    final = bff.get_order(order.order_id)
    assert final.refunded_fee == order.total_fee
    with pytest.raises(OrderPayError) as twice:
        admin.resolve_abnormal_refund(no, route, "again", *card)  # type: ignore[arg-type]
    assert twice.value.reason == "INVALID_STATE_TRANSITION"


def test_an_operator_resolves_an_abnormal_refund_from_the_cli(
    bff: OrderPayClient, admin: OrderPayClient, stack: Stack, rid: str, abnormal_refunds: object
) -> None:
    """`orderpay ops resolve-abnormal`: the way out the console's attention queue points to."""
    order = buy(bff, stack, f"e2e-ops-{rid}")
    no = f"RABO{rid}"
    admin.refund_order(order.order_id, no, order.total_fee, "customer asked")
    wait_until(
        lambda: admin.get_refund(no, sync=True).status == pay_service_pb2.REFUND_STATUS_ABNORMAL,
        20,
        "refund ABNORMAL",
    )
    stack.control("PUT", "config", {"refund_settle_status": "SUCCESS"})

    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "ops", "resolve-abnormal", no, "--to-merchant",
         "--reason", "card closed; ticket 43", "--target", stack.grpc_target, "--token", ADMIN_TOKEN],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"refund {no} is REFUND_STATUS_PROCESSING again" in done.stdout
    wait_until(
        lambda: bff.get_order(order.order_id).status == order_pb2.ORDER_STATUS_REFUNDED, 30, "refund SUCCESS"
    )
