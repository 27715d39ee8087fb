"""The key life cycle as of 2026: the echo self-test in both key modes, the reverse switch (public key
back to platform certificates), /v3/certificates' other refusals, and the newer notification field."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.app import RunningSandbox
from sandbox.keys import signing
from sandbox.keys.bundle import Credentials
from sandbox.testing import MerchantCaller, NotificationReceiver, prepay_body, wait_until

MakeSandbox = Callable[..., RunningSandbox]
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303


def seal(key: rsa.RSAPublicKey, text: str) -> str:
    return base64.b64encode(key.encrypt(text.encode(), OAEP)).decode()


def certificate_key(credentials: Credentials) -> rsa.RSAPublicKey:
    key = x509.load_pem_x509_certificate(credentials.platform_cert_pem.encode()).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


@pytest.mark.parametrize("key_mode", ["public_key", "certificate"])
def test_echo_self_test_in_both_key_modes(
    make_sandbox: MakeSandbox,
    make_caller: Callable[..., MerchantCaller],
    credentials: Credentials,
    receiver: NotificationReceiver,
    key_mode: str,
) -> None:
    caller = make_caller(make_sandbox(key_mode=key_mode))
    if key_mode == "public_key":
        serial, key = credentials.wechatpay_public_key_id, credentials.wechatpay_public_key
    else:
        serial, key = credentials.platform_cert_serial_no, certificate_key(credentials)
    message = "echo-" + secrets.token_hex(4)
    body = {"echo_message": message, "encrypted_echo_message": seal(key, message), "notify_url": receiver.url}
    answer = caller.call("POST", "/v3/security/echo", body, headers={"Wechatpay-Serial": serial})
    assert answer.status == 200, answer.body
    assert answer.headers["wechatpay-serial"] == serial  # signed with the key the merchant named
    echoed = answer.json()
    assert echoed["echo_message"] == message
    opened = credentials.merchant_private_key.decrypt(
        base64.b64decode(echoed["encrypted_echo_message"]), OAEP
    )
    assert opened.decode() == message  # sealed to the merchant's own key
    (note,) = wait_until(lambda: receiver.received)
    assert note.event_type == "SECURITY.ECHO"
    assert note.headers["Wechatpay-Serial"] == serial


def test_echo_refuses_a_wrong_serial_or_a_message_that_does_not_decrypt(
    caller: MerchantCaller, credentials: Credentials
) -> None:
    ask = {"Wechatpay-Serial": credentials.wechatpay_public_key_id}
    wrong = {"echo_message": "hi", "encrypted_echo_message": seal(certificate_key(credentials), "hi")}
    assert caller.call("POST", "/v3/security/echo", wrong, headers=ask).json()["code"] == "PARAM_ERROR"
    unknown = caller.call(
        "POST", "/v3/security/echo", {"echo_message": "hi"}, headers={"Wechatpay-Serial": "X"}
    )
    assert (unknown.status, unknown.json()["code"]) == (400, "PARAM_ERROR")
    missing = caller.call("POST", "/v3/security/echo", {"echo_message": "hi"})
    assert missing.status == 400


@pytest.mark.parametrize(
    ("refusal", "status", "code"),
    [("403", 403, "NO_AUTH"), ("500", 500, "SYSTEM_ERROR"), ("404", 404, "RESOURCE_NOT_EXISTS")],
)
def test_certificate_download_refusals(
    sandbox: RunningSandbox, caller: MerchantCaller, refusal: str, status: int, code: str
) -> None:
    assert caller.call("GET", "/v3/certificates").status == 200
    caller.control("PUT", "config", {"certificates_refusal": refusal})
    answer = caller.call("GET", "/v3/certificates")
    assert (answer.status, answer.json()["code"]) == (status, code)
    assert "wechatpay-signature" in answer.headers  # a business refusal is signed like any answer
    if refusal == "500":
        assert answer.json()["message"] == "系统繁忙，请稍后重试"


def test_reverse_switch_from_public_key_back_to_certificates(
    make_sandbox: MakeSandbox,
    make_caller: Callable[..., MerchantCaller],
    credentials: Credentials,
    receiver: NotificationReceiver,
) -> None:
    caller = make_caller(make_sandbox(key_mode="public_key_only"))
    assert caller.call("GET", "/v3/certificates").status == 404
    described = caller.control("POST", "keys/reverse")
    assert described["mode"] == "certificate"
    assert caller.call("GET", "/v3/certificates").status == 200
    out_trade_no = "RV" + secrets.token_hex(6)
    assert (
        caller.call(
            "POST", "/v3/pay/transactions/jsapi", prepay_body(credentials, out_trade_no, receiver.url)
        ).status
        == 200
    )
    caller.control("POST", f"orders/{out_trade_no}/pay")
    (note,) = wait_until(lambda: receiver.received)
    assert note.headers["Wechatpay-Serial"] == credentials.platform_cert_serial_no
    again = httpx.post(f"{caller.base_url}/sandbox/v1/keys/reverse", timeout=10)
    assert (again.status_code, again.json()["code"]) == (400, "BAD_CONFIG")  # only from public-key mode


def test_payment_notifications_carry_installment_info(
    caller: MerchantCaller, credentials: Credentials, receiver: NotificationReceiver
) -> None:
    out_trade_no = "II" + secrets.token_hex(6)
    caller.call("POST", "/v3/pay/transactions/jsapi", prepay_body(credentials, out_trade_no, receiver.url))
    caller.control("POST", f"orders/{out_trade_no}/pay")
    (note,) = wait_until(lambda: receiver.received)
    resource = json.loads(note.body)["resource"]
    plain = signing.decrypt_resource(
        credentials.apiv3_key, resource["nonce"], resource["associated_data"], resource["ciphertext"]
    )
    assert json.loads(plain)["installment_info"] == {"use_subsidy": False, "selected_installment_number": 0}
