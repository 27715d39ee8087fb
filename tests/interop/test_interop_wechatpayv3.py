"""Interop with a client nobody here wrote: the public `wechatpayv3` SDK (PyPI, pinned) against the
sandbox, in public-key mode and in certificate mode (its download + decryption of /v3/certificates
included), and its `callback()` on the sandbox's payment and refund notifications."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from wechatpayv3 import WeChatPay, WeChatPayType

from sandbox.app import RunningSandbox
from sandbox.keys import signing
from sandbox.keys.bundle import Credentials
from sandbox.testing import NotificationReceiver
from tests.support.sdk import sdk_callback

MakeWxpay = Callable[[WeChatPayType], WeChatPay]
CHANNEL_ARGS: dict[str, tuple[WeChatPayType, dict[str, Any], str]] = {
    "jsapi": (WeChatPayType.JSAPI, {"payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}, "prepay_id"),
    "app": (WeChatPayType.APP, {}, "prepay_id"),
    "h5": (
        WeChatPayType.H5,
        {"scene_info": {"payer_client_ip": "203.0.113.7", "h5_info": {"type": "Wap"}}},
        "h5_url",
    ),
    "native": (WeChatPayType.NATIVE, {}, "code_url"),
}


def pay_in_sandbox(sandbox: RunningSandbox, out_trade_no: str) -> None:
    httpx.post(f"{sandbox.base_url}/sandbox/v1/orders/{out_trade_no}/pay").raise_for_status()


@pytest.mark.parametrize("channel", list(CHANNEL_ARGS))
def test_pay_query_refund_and_callbacks(
    make_wxpay: MakeWxpay,
    sandbox: RunningSandbox,
    receiver: NotificationReceiver,
    credentials: Credentials,
    out_trade_no: str,
    mode: str,
    key_mode: str,
    cert_dir: Path,
    channel: str,
) -> None:
    pay_type, extra, answer_key = CHANNEL_ARGS[channel]
    wxpay = make_wxpay(pay_type)

    code, text = wxpay.pay(
        description="VIP 月卡", out_trade_no=out_trade_no, amount={"total": 990}, attach="u=7", **extra
    )
    assert code == 200, text
    assert list(json.loads(text)) == [answer_key]
    if mode == "cert":  # the SDK fetched, decrypted and cached the sandbox's platform certificate
        cached = (cert_dir / f"{credentials.platform_cert_serial_no}.pem").read_text(encoding="utf-8")
        assert cached == credentials.platform_cert_pem

    code, text = wxpay.query(out_trade_no=out_trade_no)
    assert (code, json.loads(text)["trade_state"]) == (200, "NOTPAY")

    pay_in_sandbox(sandbox, out_trade_no)
    (payment,) = receiver.wait_for(lambda r: len(r) == 1)
    notified = sdk_callback(wxpay, payment)
    assert notified["event_type"] == "TRANSACTION.SUCCESS"
    transaction = notified["resource"]
    assert (transaction["out_trade_no"], transaction["trade_state"], transaction["attach"]) == (
        out_trade_no, "SUCCESS", "u=7",
    )  # fmt: skip
    assert transaction["amount"]["total"] == 990
    serials = {credentials.platform_cert_serial_no, credentials.wechatpay_public_key_id}
    if key_mode == "certificate":
        serials = {credentials.platform_cert_serial_no}
    elif key_mode != "migrating":
        serials = {credentials.wechatpay_public_key_id}
    assert payment.headers["Wechatpay-Serial"] in serials

    code, text = wxpay.query(transaction_id=transaction["transaction_id"])
    assert (code, json.loads(text)["trade_state"]) == (200, "SUCCESS")

    out_refund_no = "RF" + secrets.token_hex(8)
    code, text = wxpay.refund(
        out_refund_no=out_refund_no,
        out_trade_no=out_trade_no,
        amount={"refund": 500, "total": 990, "currency": "CNY"},
    )
    assert (code, json.loads(text)["status"]) == (200, "PROCESSING")
    refund_note = sdk_callback(wxpay, receiver.wait_for(lambda r: len(r) == 2)[1])
    assert refund_note["event_type"] == "REFUND.SUCCESS"
    assert (refund_note["resource"]["refund_status"], refund_note["resource"]["out_refund_no"]) == (
        "SUCCESS", out_refund_no,
    )  # fmt: skip
    code, text = wxpay.query_refund(out_refund_no=out_refund_no)
    assert (code, json.loads(text)["status"]) == (200, "SUCCESS")


def test_close_and_errors(make_wxpay: MakeWxpay, out_trade_no: str) -> None:
    wxpay = make_wxpay(WeChatPayType.NATIVE)
    assert wxpay.pay(description="d", out_trade_no=out_trade_no, amount={"total": 1})[0] == 200
    assert wxpay.close(out_trade_no=out_trade_no) == (204, b"")
    code, text = wxpay.pay(description="d", out_trade_no=out_trade_no, amount={"total": 1})
    assert (code, json.loads(text)["code"]) == (400, "ORDER_CLOSED")
    code, text = wxpay.query(out_trade_no="NOSUCH" + out_trade_no)
    assert (code, json.loads(text)["code"]) == (404, "ORDER_NOT_EXIST")


def test_pay_sign_from_the_sdk_verifies_in_the_sandbox(
    make_wxpay: MakeWxpay, credentials: Credentials
) -> None:
    wxpay = make_wxpay(WeChatPayType.JSAPI)
    timestamp, nonce, prepay_id = str(int(time.time())), secrets.token_hex(16), "wx" + secrets.token_hex(16)
    jsapi = wxpay.sign([credentials.appid, timestamp, nonce, f"prepay_id={prepay_id}"])
    app = wxpay.sign([credentials.appid, timestamp, nonce, prepay_id])
    common = {"appid": credentials.appid, "timestamp": timestamp, "nonce": nonce, "prepay_id": prepay_id}
    key = credentials.merchant_public_key
    assert signing.verify_pay_sign(key, kind="jsapi", signature=jsapi, **common)
    assert signing.verify_pay_sign(key, kind="app", signature=app, **common)
    assert not signing.verify_pay_sign(key, kind="app", signature=jsapi, **common)
