"""Every account kind end to end, through real processes: the sandbox playing two direct merchants (one
in public-key mode, one in certificate mode) and a provider with two sub-merchants, and `orderpay serve`
configured with the same directory of accounts. Each order is paid, notified, fulfilled and refunded
under the account stored on it; another account's order of the same number is never taken for it."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from clients.client import OrderPayClient
from orderpay.v1 import order_pb2, pay_service_pb2
from sandbox.keys import signing
from sandbox.keys.accounts import AccountSpec, load_accounts
from sandbox.keys.bundle import Credentials
from sandbox.testing import MerchantCaller
from tests.support.stack import ADMIN_TOKEN, BFF_TOKEN, ROOT, Stack, orderpay, running_stack
from tests.support.waiting import wait_until

# account, channel, payer openid needed, what the client pays with
CASES = [
    ("direct-pk", "NATIVE", False),
    ("direct-cert", "JSAPI", True),
    ("sp-sub-a", "MINIPROGRAM", True),  # its own mini program: sub_appid + sub_openid
    ("sp-sub-b", "APP", False),  # no app of its own: the provider's app (sp_appid)
]


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("accounts-stack"), database_url, accounts=True) as running:
        yield running


@pytest.fixture(scope="module")
def accounts(stack: Stack) -> dict[str, AccountSpec]:
    return {spec.name: spec for spec in load_accounts(stack.keys)}


@pytest.fixture
def bff(stack: Stack) -> Iterator[OrderPayClient]:
    with OrderPayClient(stack.grpc_target, BFF_TOKEN, default_timeout=10) as client:
        yield client


@pytest.fixture
def admin(stack: Stack) -> Iterator[OrderPayClient]:
    with OrderPayClient(stack.grpc_target, ADMIN_TOKEN, default_timeout=10) as client:
        yield client


def sandbox_order(
    stack: Stack, out_trade_no: str, spec: AccountSpec, accounts: dict[str, AccountSpec]
) -> Any:
    if spec.kind == "sub_merchant":
        sp = accounts[spec.provider or ""]
        return stack.control("GET", f"orders/{out_trade_no}?mchid={sp.mchid}&sub_mchid={spec.mchid}")
    return stack.control("GET", f"orders/{out_trade_no}?mchid={spec.mchid}")


@pytest.mark.parametrize(("account", "channel", "needs_openid"), CASES, ids=[c[0] for c in CASES])
def test_each_account_kind_pays_fulfils_and_refunds_under_its_own_account(
    bff: OrderPayClient,
    admin: OrderPayClient,
    stack: Stack,
    accounts: dict[str, AccountSpec],
    account: str,
    channel: str,
    needs_openid: bool,
) -> None:
    spec, user = accounts[account], f"acct-{secrets.token_hex(4)}"
    order = bff.create_order(user, "vip-month", merchant=account).order
    assert order.account == account
    openid = f"o_{account}_{secrets.token_hex(4)}" if needs_openid else None
    payment = bff.create_payment(order.order_id, channel, openid)
    seen = sandbox_order(stack, order.out_trade_no, spec, accounts)
    assert seen["trade_state"] == "NOTPAY"
    if spec.kind == "sub_merchant":
        assert (seen["sub_mchid"], seen["sp_mchid"]) == (spec.mchid, accounts["sp"].mchid)
        pay_app = spec.apps.get(channel.lower()) or accounts["sp"].apps[channel.lower()]
    else:
        assert seen["mchid"] == spec.mchid
        pay_app = spec.apps[channel.lower()]
    if payment.HasField("jsapi"):
        assert payment.jsapi.app_id == pay_app  # the app the payer is in signs the JS bridge call
    if payment.HasField("app"):
        assert payment.app.app_id == pay_app
        assert payment.app.partner_id == spec.mchid  # the sub-merchant's number in partner mode

    stack.pay(order.out_trade_no)
    paid = bff.get_order(order.order_id, wait_ms=15_000)
    assert (paid.status, paid.fulfilment) == (order_pb2.ORDER_STATUS_PAID, order_pb2.FULFILMENT_SUCCEEDED)
    urls = {a["url"] for a in stack.attempts() if a["out_trade_no"] == order.out_trade_no}
    assert urls == {f"{stack.notify_url}/{account}"}

    out_refund_no = "RA" + secrets.token_hex(8)
    admin.refund_order(order.order_id, out_refund_no, paid.paid_fee, "e2e")
    wait_until(
        lambda: admin.get_refund(out_refund_no).status == pay_service_pb2.REFUND_STATUS_SUCCESS,
        20,
        "refund settled by its notification",
    )


def caller_for(stack: Stack, creds: Credentials | None) -> MerchantCaller:
    assert creds is not None
    return MerchantCaller(stack.sandbox_url, creds)


def test_another_accounts_order_of_the_same_number_is_never_taken_for_ours(
    bff: OrderPayClient, stack: Stack, accounts: dict[str, AccountSpec]
) -> None:
    mine, theirs = accounts["direct-pk"], accounts["direct-cert"]
    order = bff.create_order(f"acct-{secrets.token_hex(4)}", "vip-month", merchant=mine.name).order
    bff.create_payment(order.order_id, "NATIVE")
    # The other merchant has (and is paid for) an order with the very same number, and WeChat notifies
    # it to that merchant's URL here: the order is direct-pk's, so nothing of it may count.
    other = caller_for(stack, theirs.credentials)
    body = {
        "appid": theirs.apps["native"], "mchid": theirs.mchid, "description": "same number",
        "out_trade_no": order.out_trade_no, "notify_url": f"{stack.notify_url}/{theirs.name}",
        "amount": {"total": 1, "currency": "CNY"},
    }  # fmt: skip
    assert other.call("POST", "/v3/pay/transactions/native", body).status == 200
    stack.control("POST", f"orders/{order.out_trade_no}/pay?mchid={theirs.mchid}")
    wait_until(
        lambda: [a for a in stack.attempts() if a["url"].endswith(f"/{theirs.name}") and a["status"]],
        20,
        "the other account's notification answered",
    )
    assert bff.sync_payment(order.order_id).status == order_pb2.ORDER_STATUS_UNPAID  # queried as direct-pk
    assert bff.get_order(order.order_id).status == order_pb2.ORDER_STATUS_UNPAID
    stack.control("POST", f"orders/{order.out_trade_no}/pay?mchid={mine.mchid}")
    paid = bff.get_order(order.order_id, wait_ms=15_000)
    assert paid.status == order_pb2.ORDER_STATUS_PAID
    other.close()


def signed_notification(creds: Credentials, resource: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """A TRANSACTION.SUCCESS notification exactly as WeChat would send it for `creds`' merchant."""
    nonce = secrets.token_hex(6)
    sealed = signing.encrypt_resource(creds.apiv3_key, nonce, "transaction", json.dumps(resource).encode())
    envelope = {
        "id": str(uuid.uuid4()), "create_time": "2026-12-07T10:00:00+08:00",
        "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
        "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM", "ciphertext": sealed,
                     "associated_data": "transaction", "nonce": nonce},
    }  # fmt: skip
    body = json.dumps(envelope).encode()
    stamp, header_nonce = str(int(time.time())), secrets.token_hex(16)
    headers = signing.signed_headers(
        creds.wechatpay_private_key, creds.wechatpay_public_key_id, body, timestamp=stamp, nonce=header_nonce
    )
    return {**headers, "Content-Type": "application/json"}, body


def test_a_notification_on_another_accounts_url_or_an_unknown_one_is_refused(
    bff: OrderPayClient, stack: Stack, accounts: dict[str, AccountSpec]
) -> None:
    mine = accounts["direct-pk"]
    creds = mine.credentials
    assert creds is not None
    order = bff.create_order(f"acct-{secrets.token_hex(4)}", "vip-month", merchant=mine.name).order
    resource = {
        "appid": creds.appid, "mchid": mine.mchid, "out_trade_no": order.out_trade_no,
        "transaction_id": "4200000000" + secrets.token_hex(9)[:18], "trade_state": "SUCCESS",
        "success_time": "2026-12-07T10:00:00+08:00", "amount": {"total": order.total_fee, "currency": "CNY"},
    }  # fmt: skip
    headers, body = signed_notification(creds, resource)
    for wrong in ("direct-cert", "sp", "nobody"):
        answer = httpx.post(f"{stack.notify_url}/{wrong}", content=body, headers=headers, timeout=10)
        assert 400 <= answer.status_code < 500, (wrong, answer.status_code, answer.text)
    assert bff.get_order(order.order_id).status == order_pb2.ORDER_STATUS_UNPAID
    answer = httpx.post(f"{stack.notify_url}/{mine.name}", content=body, headers=headers, timeout=10)
    assert answer.status_code in (200, 204)
    assert bff.get_order(order.order_id).status == order_pb2.ORDER_STATUS_PAID


@pytest.mark.parametrize("account", ["direct-pk", "direct-cert", "sp", "sp-sub-a"])
def test_keys_check_runs_the_echo_self_test_for_each_account(stack: Stack, account: str) -> None:
    done = orderpay("keys", "check", account, env=stack.server_env)
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["signing", "verifying", "encrypting", "decrypting"]
    assert all(" ok: " in line for line in lines[2:])
    kind = "platform certificate" if account == "direct-cert" else "WeChat Pay public key"
    assert kind in done.stdout


def test_keys_check_reports_a_refused_certificate_download(
    stack: Stack, accounts: dict[str, AccountSpec]
) -> None:
    mchid = accounts["direct-cert"].mchid
    stack.control("PUT", f"config?mchid={mchid}", {"certificates_refusal": "500"})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "clients.cli", "keys", "check", "direct-cert"],
            env=stack.server_env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        stack.control("PUT", f"config?mchid={mchid}", {"certificates_refusal": ""})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout
    assert "SYSTEM_ERROR" in done.stdout
