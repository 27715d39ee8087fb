"""The emulated endpoints: answers, re-entry rules, state transitions and signed responses."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509

from sandbox.app import RunningSandbox
from sandbox.keys import signing
from sandbox.keys.bundle import Credentials
from sandbox.testing import (
    Answer,
    MerchantCaller,
    NotificationReceiver,
    key_for_serial,
    prepay_body,
    signature_verifies,
)

NOTIFY = "https://merchant.example.com/wxpay/notify"
MakeSandbox = Callable[..., RunningSandbox]
MakeCaller = Callable[..., MerchantCaller]


def verify_answer(answer: Answer, credentials: Credentials) -> None:
    """The answer carries WeChat's signature headers and they verify over the raw body."""
    h = answer.headers
    assert h["wechatpay-signature-type"] == "WECHATPAY2-SHA256-RSA2048"
    if answer.status != 204:
        assert h["content-type"] == "application/json; charset=utf-8"
    assert h["request-id"].endswith("-0") or answer.status >= 400
    key = key_for_serial(credentials, h["wechatpay-serial"])
    assert signature_verifies(h, answer.body, key)


def prepay(caller: MerchantCaller, channel: str, body: dict[str, object]) -> Answer:
    return caller.call("POST", f"/v3/pay/transactions/{channel}", body)


def test_jsapi_prepay_returns_a_signed_prepay_id(caller: MerchantCaller, credentials: Credentials) -> None:
    answer = prepay(caller, "jsapi", prepay_body(credentials, "T" + "1" * 10, NOTIFY))
    assert answer.status == 200
    assert answer.json()["prepay_id"].startswith("wx")
    assert len(answer.json()["prepay_id"]) <= 64
    verify_answer(answer, credentials)
    assert answer.headers["wechatpay-serial"] == credentials.platform_cert_serial_no


def test_public_key_id_in_the_request_selects_public_key_signing(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    body = prepay_body(credentials, out_trade_no, NOTIFY)
    answer = caller.call(
        "POST",
        "/v3/pay/transactions/jsapi",
        body,
        headers={"Wechatpay-Serial": credentials.wechatpay_public_key_id},
    )
    assert answer.headers["wechatpay-serial"] == credentials.wechatpay_public_key_id
    verify_answer(answer, credentials)


@pytest.mark.parametrize(
    ("channel", "extra", "key"),
    [
        ("app", {"payer": None}, "prepay_id"),
        ("native", {"payer": None}, "code_url"),
        (
            "h5",
            {"payer": None, "scene_info": {"payer_client_ip": "1.2.3.4", "h5_info": {"type": "Wap"}}},
            "h5_url",
        ),
    ],
)
def test_other_channels_answer_their_own_field(
    caller: MerchantCaller,
    credentials: Credentials,
    out_trade_no: str,
    channel: str,
    extra: dict[str, object],
    key: str,
) -> None:
    body = {k: v for k, v in prepay_body(credentials, out_trade_no, NOTIFY, **extra).items() if v is not None}
    answer = prepay(caller, channel, body)
    assert answer.status == 200, answer.body
    assert list(answer.json()) == [key]
    if key == "code_url":
        assert answer.json()[key].startswith("weixin://wxpay/bizpayurl?pr=")
    if key == "h5_url":
        assert answer.json()[key].startswith(f"{caller.base_url}/sandbox/cashier/")


def test_same_parameters_reenter_with_the_same_prepay_id(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    body = prepay_body(credentials, out_trade_no, NOTIFY)
    first, second = prepay(caller, "jsapi", body), prepay(caller, "jsapi", body)
    assert first.json() == second.json()


@pytest.mark.parametrize(
    "change",
    [{"amount": {"total": 101, "currency": "CNY"}}, {"description": "other"}, {"attach": "x"}],
)
def test_changed_parameters_are_a_duplicate_order_number(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str, change: dict[str, object]
) -> None:
    prepay(caller, "jsapi", prepay_body(credentials, out_trade_no, NOTIFY))
    answer = prepay(caller, "jsapi", prepay_body(credentials, out_trade_no, NOTIFY, **change))
    assert (answer.status, answer.json()) == (
        400,
        {"code": "INVALID_REQUEST", "message": "201 商户订单号重复"},
    )
    verify_answer(answer, credentials)


def test_same_number_on_another_channel_is_a_duplicate(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    body = prepay_body(credentials, out_trade_no, NOTIFY)
    prepay(caller, "jsapi", body)
    assert prepay(caller, "app", body).json()["code"] == "INVALID_REQUEST"


def test_prepay_on_paid_and_closed_orders(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    body = prepay_body(credentials, out_trade_no, NOTIFY)
    prepay(caller, "jsapi", body)
    caller.control("POST", f"orders/{out_trade_no}/pay")
    assert (prepay(caller, "jsapi", body).status, prepay(caller, "jsapi", body).json()["code"]) == (
        400,
        "ORDERPAID",
    )
    closed = "C" + out_trade_no
    prepay(caller, "jsapi", prepay_body(credentials, closed, NOTIFY))
    caller.call("POST", f"/v3/pay/transactions/out-trade-no/{closed}/close", {"mchid": credentials.mchid})
    again = prepay(caller, "jsapi", prepay_body(credentials, closed, NOTIFY))
    assert (again.status, again.json()["code"]) == (400, "ORDER_CLOSED")


def test_time_expire_is_clamped_between_one_minute_and_ninety_days(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    now = datetime.now(UTC)
    early = (now - timedelta(hours=1)).isoformat(timespec="seconds")
    late = (now + timedelta(days=400)).isoformat(timespec="seconds")
    prepay(caller, "jsapi", prepay_body(credentials, out_trade_no, NOTIFY, time_expire=early))
    prepay(caller, "jsapi", prepay_body(credentials, out_trade_no + "L", NOTIFY, time_expire=late))
    soon = datetime.fromisoformat(caller.control("GET", f"orders/{out_trade_no}")["time_expire"])
    far = datetime.fromisoformat(caller.control("GET", f"orders/{out_trade_no}L")["time_expire"])
    assert timedelta(seconds=55) <= soon - now <= timedelta(minutes=2)
    assert timedelta(days=89) <= far - now <= timedelta(days=90, minutes=1)


def test_query_both_ways_after_payment(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    prepay(caller, "jsapi", prepay_body(credentials, out_trade_no, NOTIFY, attach="a=1"))
    unpaid = caller.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={credentials.mchid}")
    assert unpaid.json()["trade_state"] == "NOTPAY"
    assert "attach" not in unpaid.json()  # only returned once paid
    caller.control("POST", f"orders/{out_trade_no}/pay")
    paid = caller.call(
        "GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={credentials.mchid}"
    ).json()
    assert paid["trade_state"] == "SUCCESS"
    assert len(paid["transaction_id"]) == 28
    assert paid["transaction_id"].isdigit()
    assert paid["success_time"].endswith("+08:00")
    assert (paid["bank_type"], paid["attach"], paid["trade_type"]) == ("OTHERS", "a=1", "JSAPI")
    assert paid["amount"] == {"total": 100, "payer_total": 100, "currency": "CNY", "payer_currency": "CNY"}
    by_id = caller.call("GET", f"/v3/pay/transactions/id/{paid['transaction_id']}?mchid={credentials.mchid}")
    assert by_id.json() == paid
    verify_answer(by_id, credentials)


def test_unknown_orders_are_not_found(caller: MerchantCaller, credentials: Credentials) -> None:
    for target in (
        f"/v3/pay/transactions/out-trade-no/NOSUCH1234?mchid={credentials.mchid}",
        f"/v3/pay/transactions/id/4200000000000000000000000000?mchid={credentials.mchid}",
    ):
        answer = caller.call("GET", target)
        assert (answer.status, answer.json()["code"]) == (404, "ORDER_NOT_EXIST")
        verify_answer(answer, credentials)


def test_close_is_204_signed_and_reentrant(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    prepay(caller, "jsapi", prepay_body(credentials, out_trade_no, NOTIFY))
    target = f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close"
    for _ in range(2):
        answer = caller.call("POST", target, {"mchid": credentials.mchid})
        assert (answer.status, answer.body) == (204, b"")
        verify_answer(answer, credentials)
    state = caller.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={credentials.mchid}")
    assert state.json()["trade_state"] == "CLOSED"
    with pytest.raises(httpx.HTTPStatusError, match="400"):
        caller.control("POST", f"orders/{out_trade_no}/pay")


def test_closing_a_paid_order_is_orderpaid(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    prepay(caller, "jsapi", prepay_body(credentials, out_trade_no, NOTIFY))
    caller.control("POST", f"orders/{out_trade_no}/pay")
    answer = caller.call(
        "POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close", {"mchid": credentials.mchid}
    )
    assert (answer.status, answer.json()["code"]) == (400, "ORDERPAID")


def refund_body(out_trade_no: str, out_refund_no: str, refund: int, total: int = 100) -> dict[str, object]:
    return {
        "out_trade_no": out_trade_no,
        "out_refund_no": out_refund_no,
        "amount": {"refund": refund, "total": total, "currency": "CNY"},
    }


def paid_order(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str, notify_url: str = NOTIFY
) -> None:
    prepay(caller, "jsapi", prepay_body(credentials, out_trade_no, notify_url))
    caller.control("POST", f"orders/{out_trade_no}/pay")


def test_refunds_are_idempotent_and_bounded_by_the_paid_amount(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    paid_order(caller, credentials, out_trade_no)
    first = caller.call(
        "POST", "/v3/refund/domestic/refunds", refund_body(out_trade_no, "R1" + out_trade_no, 60)
    )
    assert (first.status, first.json()["status"]) == (200, "PROCESSING")
    verify_answer(first, credentials)
    again = caller.call(
        "POST", "/v3/refund/domestic/refunds", refund_body(out_trade_no, "R1" + out_trade_no, 60)
    )
    assert again.json()["refund_id"] == first.json()["refund_id"]
    over = caller.call(
        "POST", "/v3/refund/domestic/refunds", refund_body(out_trade_no, "R2" + out_trade_no, 41)
    )
    assert (over.status, over.json()["code"]) == (400, "INVALID_REQUEST")
    rest = caller.call(
        "POST", "/v3/refund/domestic/refunds", refund_body(out_trade_no, "R3" + out_trade_no, 40)
    )
    assert rest.status == 200
    trade = caller.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={credentials.mchid}")
    assert trade.json()["trade_state"] == "REFUND"


def test_refund_total_must_match_the_order(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    paid_order(caller, credentials, out_trade_no)
    answer = caller.call(
        "POST", "/v3/refund/domestic/refunds", refund_body(out_trade_no, "R" + out_trade_no, 10, total=99)
    )
    assert (answer.status, answer.json()["code"]) == (400, "INVALID_REQUEST")


def test_refund_of_unpaid_or_unknown_order_is_resource_not_exists(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    prepay(caller, "jsapi", prepay_body(credentials, out_trade_no, NOTIFY))
    for number in (out_trade_no, "UNKNOWN123"):
        answer = caller.call(
            "POST", "/v3/refund/domestic/refunds", refund_body(number, "R" + out_trade_no, 10)
        )
        assert (answer.status, answer.json()) == (
            404,
            {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"},
        )
    missing = caller.call("GET", "/v3/refund/domestic/refunds/NOSUCHREFUND")
    assert (missing.status, missing.json()["code"]) == (404, "RESOURCE_NOT_EXISTS")


def test_fifty_refunds_per_order_at_most(
    make_sandbox: MakeSandbox, make_caller: MakeCaller, credentials: Credentials, out_trade_no: str
) -> None:
    client = make_caller(make_sandbox(refund_settle_delay_s=None))
    prepay(client, "jsapi", prepay_body(credentials, out_trade_no, NOTIFY))
    client.control("POST", f"orders/{out_trade_no}/pay")
    codes = [
        client.call("POST", "/v3/refund/domestic/refunds", refund_body(out_trade_no, f"R{i}", 1)).status
        for i in range(51)
    ]
    assert codes[:50] == [200] * 50
    assert codes[50] == 400


def test_certificates_decrypt_to_the_platform_cert(caller: MerchantCaller, credentials: Credentials) -> None:
    answer = caller.call("GET", "/v3/certificates")
    verify_answer(answer, credentials)
    (entry,) = answer.json()["data"]
    assert entry["serial_no"] == credentials.platform_cert_serial_no
    enc = entry["encrypt_certificate"]
    assert (enc["algorithm"], enc["associated_data"], len(enc["nonce"])) == (
        "AEAD_AES_256_GCM",
        "certificate",
        12,
    )
    pem = signing.decrypt_resource(credentials.apiv3_key, enc["nonce"], "certificate", enc["ciphertext"])
    cert = x509.load_pem_x509_certificate(pem)
    assert f"{cert.serial_number:X}" == credentials.platform_cert_serial_no
    assert cert.public_key() == credentials.platform_private_key.public_key()
    assert cert.public_key() != credentials.wechatpay_public_key  # two key pairs, as at WeChat


def test_public_key_only_merchant_has_no_certificates(
    make_sandbox: MakeSandbox, make_caller: MakeCaller
) -> None:
    client = make_caller(make_sandbox(certificates_available=False))
    answer = client.call("GET", "/v3/certificates")
    assert (answer.status, answer.json()["code"]) == (404, "RESOURCE_NOT_EXISTS")


def test_payment_notification_reaches_the_notify_url(
    caller: MerchantCaller, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    prepay(caller, "jsapi", prepay_body(credentials, out_trade_no, receiver.url))
    caller.control("POST", f"orders/{out_trade_no}/pay")
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    envelope = json.loads(got.body)
    assert envelope["event_type"] == "TRANSACTION.SUCCESS"
    assert envelope["resource"]["associated_data"] == "transaction"
    message = signing.response_message(
        got.headers["Wechatpay-Timestamp"], got.headers["Wechatpay-Nonce"], got.body
    )
    assert signing.rsa_verify(credentials.wechatpay_public_key, message, got.headers["Wechatpay-Signature"])
    assert got.headers["Wechatpay-Serial"] == credentials.wechatpay_public_key_id
    resource = envelope["resource"]
    plain = json.loads(
        signing.decrypt_resource(
            credentials.apiv3_key, resource["nonce"], "transaction", resource["ciphertext"]
        )
    )
    assert (plain["out_trade_no"], plain["trade_state"], plain["amount"]["total"]) == (
        out_trade_no,
        "SUCCESS",
        100,
    )
