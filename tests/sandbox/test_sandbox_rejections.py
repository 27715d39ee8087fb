"""Bad requests of every kind get WeChat's code and HTTP status; authentication failures are unsigned."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from sandbox.keys import signing
from sandbox.keys.bundle import Credentials
from sandbox.testing import MerchantCaller, prepay_body

NOTIFY = "https://merchant.example.com/wxpay/notify"
JSAPI = "/v3/pay/transactions/jsapi"


def assert_unsigned_sign_error(status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
    assert (status, body["code"]) == (401, "SIGN_ERROR")
    assert "wechatpay-signature" not in headers


def test_bad_signature(caller: MerchantCaller, credentials: Credentials, out_trade_no: str) -> None:
    body = prepay_body(credentials, out_trade_no, NOTIFY)
    good = signing.build_authorization(
        credentials.merchant_private_key, mchid=credentials.mchid, serial_no=credentials.merchant_serial_no,
        method="POST", target=JSAPI, body=b"{}", timestamp=str(int(time.time())), nonce="N" * 32,
    )  # fmt: skip
    answer = caller.call("POST", JSAPI, body, authorization=good)  # signed over other bytes
    assert_unsigned_sign_error(answer.status, answer.headers, answer.json())


def test_signature_by_another_key(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    raw = b'{"a":1}'
    forged = signing.build_authorization(
        credentials.wechatpay_private_key, mchid=credentials.mchid, serial_no=credentials.merchant_serial_no,
        method="POST", target=JSAPI, body=raw, timestamp=str(int(time.time())), nonce="N" * 32,
    )  # fmt: skip
    answer = caller.call("POST", JSAPI, raw=raw, authorization=forged)
    assert_unsigned_sign_error(answer.status, answer.headers, answer.json())


@pytest.mark.parametrize("skew", [-301, 301, -3600])
def test_stale_timestamp(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str, skew: int
) -> None:
    answer = caller.call(
        "POST", JSAPI, prepay_body(credentials, out_trade_no, NOTIFY), timestamp=int(time.time()) + skew
    )
    assert_unsigned_sign_error(answer.status, answer.headers, answer.json())
    assert "5分钟" in answer.json()["message"]


def test_unknown_serial(caller: MerchantCaller, credentials: Credentials, out_trade_no: str) -> None:
    raw = b"{}"
    auth = signing.build_authorization(
        credentials.merchant_private_key, mchid=credentials.mchid, serial_no="ABCDEF" * 6 + "0000",
        method="POST", target=JSAPI, body=raw, timestamp=str(int(time.time())), nonce="N" * 32,
    )  # fmt: skip
    answer = caller.call("POST", JSAPI, raw=raw, authorization=auth)
    assert_unsigned_sign_error(answer.status, answer.headers, answer.json())


@pytest.mark.parametrize(
    "header", ["", "Bearer abc", 'WECHATPAY2-SHA256-RSA2048 mchid="1"', "WECHATPAY2-SHA256-RSA2048 garbage"]
)
def test_malformed_authorization(caller: MerchantCaller, credentials: Credentials, header: str) -> None:
    answer = caller.call("GET", "/v3/certificates", authorization=header or "WECHATPAY2-SHA256-RSA2048")
    assert_unsigned_sign_error(answer.status, answer.headers, answer.json())


def test_mchid_in_body_differs_from_authorization(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    answer = caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, NOTIFY, mchid="1900000001"))
    assert_unsigned_sign_error(answer.status, answer.headers, answer.json())
    assert "mchid" in answer.json()["message"]


def test_mchid_in_query_differs_from_authorization(caller: MerchantCaller, out_trade_no: str) -> None:
    answer = caller.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=1900000001")
    assert_unsigned_sign_error(answer.status, answer.headers, answer.json())


def test_query_without_mchid_is_a_param_error(caller: MerchantCaller, out_trade_no: str) -> None:
    answer = caller.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}")
    assert (answer.status, answer.json()["code"]) == (400, "PARAM_ERROR")
    assert answer.json()["detail"]["location"] == "uri_template"
    assert "wechatpay-signature" in answer.headers  # business errors are signed


def test_malformed_json(caller: MerchantCaller) -> None:
    for raw in (b"{not json", b"[1,2]", b"\xff\xfe"):
        answer = caller.call("POST", JSAPI, raw=raw)
        assert (answer.status, answer.json()["code"]) == (400, "PARAM_ERROR")


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


BAD_PREPAYS: list[tuple[str, Any]] = [
    ("/appid", lambda b: _without(b, "appid")),
    ("/description", lambda b: _without(b, "description")),
    ("/notify_url", lambda b: _without(b, "notify_url")),
    ("/amount", lambda b: _without(b, "amount")),
    ("/amount/total", lambda b: _without(b, "amount", "total")),
    ("/payer", lambda b: _without(b, "payer")),
    ("/payer/openid", lambda b: {**b, "payer": {}}),
    ("/description", lambda b: {**b, "description": "x" * 128}),
    ("/attach", lambda b: {**b, "attach": "x" * 129}),
    ("/notify_url", lambda b: {**b, "notify_url": "https://m.example.com/" + "x" * 240}),
    ("/notify_url", lambda b: {**b, "notify_url": "https://m.example.com/n?a=1"}),
    ("/notify_url", lambda b: {**b, "notify_url": "/relative"}),
    ("/out_trade_no", lambda b: {**b, "out_trade_no": "bad#chars!"}),
    ("/out_trade_no", lambda b: {**b, "out_trade_no": "12345"}),
    ("/out_trade_no", lambda b: {**b, "out_trade_no": "x" * 33}),
    ("/amount/total", lambda b: {**b, "amount": {"total": 0}}),
    ("/amount/total", lambda b: {**b, "amount": {"total": -5}}),
    ("/amount/total", lambda b: {**b, "amount": {"total": 1.5}}),
    ("/amount/total", lambda b: {**b, "amount": {"total": "100"}}),
    ("/amount/currency", lambda b: {**b, "amount": {"total": 1, "currency": "USD"}}),
    ("/time_expire", lambda b: {**b, "time_expire": "tomorrow"}),
    ("/surprise", lambda b: {**b, "surprise": True}),
]


@pytest.mark.parametrize(("field", "mutate"), BAD_PREPAYS)
def test_invalid_prepay_fields_are_param_errors(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str, field: str, mutate: Any
) -> None:
    answer = caller.call("POST", JSAPI, mutate(prepay_body(credentials, out_trade_no, NOTIFY)))
    assert (answer.status, answer.json()["code"]) == (400, "PARAM_ERROR"), answer.body
    assert answer.json()["detail"]["field"] == field


def test_h5_needs_scene_info_with_h5_info(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    body = _without(prepay_body(credentials, out_trade_no, NOTIFY), "payer")
    missing = caller.call("POST", "/v3/pay/transactions/h5", body)
    assert (missing.status, missing.json()["detail"]["field"]) == (400, "/scene_info")
    body["scene_info"] = {"payer_client_ip": "1.2.3.4"}
    no_h5 = caller.call("POST", "/v3/pay/transactions/h5", body)
    assert (no_h5.status, no_h5.json()["detail"]["field"]) == (400, "/scene_info/h5_info")
    body["scene_info"] = {"h5_info": {"type": "Wap"}}
    no_ip = caller.call("POST", "/v3/pay/transactions/h5", body)
    assert (no_ip.status, no_ip.json()["detail"]["field"]) == (400, "/scene_info/payer_client_ip")


def test_appid_of_another_merchant(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    answer = caller.call(
        "POST", JSAPI, prepay_body(credentials, out_trade_no, NOTIFY, appid="wx" + secrets.token_hex(8))
    )
    assert (answer.status, answer.json()["code"]) == (400, "APPID_MCHID_NOT_MATCH")


@pytest.mark.parametrize(
    "body",
    [
        {"out_trade_no": "T123456", "amount": {"refund": 1, "total": 1}},  # no out_refund_no
        {"out_refund_no": "R1", "amount": {"refund": 1, "total": 1}},  # neither order reference
        {"out_refund_no": "R 1", "out_trade_no": "T123456", "amount": {"refund": 1, "total": 1}},
        {"out_refund_no": "R1", "out_trade_no": "T123456", "amount": {"refund": 0, "total": 1}},
        {"out_refund_no": "R1", "out_trade_no": "T123456", "amount": {"refund": 1}},
        {
            "out_refund_no": "R1",
            "out_trade_no": "T123456",
            "amount": {"refund": 1, "total": 1},
            "reason": "x" * 81,
        },
    ],
)
def test_invalid_refund_fields_are_param_errors(caller: MerchantCaller, body: dict[str, Any]) -> None:
    answer = caller.call("POST", "/v3/refund/domestic/refunds", body)
    assert (answer.status, answer.json()["code"]) == (400, "PARAM_ERROR"), answer.body
