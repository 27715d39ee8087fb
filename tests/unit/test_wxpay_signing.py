"""server.wxpay reproduces the SDK-generated known-answer vectors and rejects every forgery we tried."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.provider import TransactionReport
from server.wxpay.credentials import MerchantCredentials, load_credentials
from server.wxpay.crypto import decrypt_resource, encrypt_resource
from server.wxpay.errors import (
    BadSignatureError,
    CredentialsError,
    MissingHeadersError,
    NotificationRejected,
    StaleTimestampError,
    UndecryptableError,
    UnknownSerialError,
)
from server.wxpay.notification import parse_notification
from server.wxpay.signing import (
    VerifierKeys,
    app_pay_params,
    authorization_header,
    jsapi_pay_params,
    parse_authorization,
    pay_sign_message,
    request_message,
    response_message,
    sign,
    verify_signed_message,
)
from server.wxpay.wire import transaction_report

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
VECTORS: dict[str, Any] = json.loads((VECTORS_DIR / "wechatpay_v3.json").read_text(encoding="utf-8"))
KEYS_DIR = VECTORS_DIR / "keys"


def _private_key(name: str) -> rsa.RSAPrivateKey:
    key = load_pem_private_key((KEYS_DIR / name).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


MERCHANT_KEY = _private_key("merchant_private_key.pem")
WECHATPAY_KEY = _private_key("wechatpay_private_key.pem")


def write_bundle(directory: Path, **overrides: str) -> Path:
    merchant = {
        "mchid": VECTORS["mchid"],
        "appid": VECTORS["appid"],
        "merchant_serial_no": VECTORS["merchant_serial_no"],
        "apiv3_key": VECTORS["apiv3_key"],
        "wechatpay_public_key_id": VECTORS["wechatpay_public_key_id"],
        "platform_cert_serial_no": "",
        **overrides,
    }
    (directory / "merchant.json").write_text(json.dumps(merchant), encoding="utf-8")
    for name in ("merchant_private_key.pem", "merchant_public_key.pem", "wechatpay_public_key.pem"):
        shutil.copy(KEYS_DIR / name, directory / name)
    return directory


@pytest.fixture
def credentials(tmp_path: Path) -> MerchantCredentials:
    return load_credentials(write_bundle(tmp_path))


@pytest.fixture
def keys(credentials: MerchantCredentials) -> VerifierKeys:
    return credentials.verifier_keys()


def wechat_sign(message: bytes) -> str:
    """Independent of server.wxpay.signing: what WeChat Pay's side computes."""
    raw = WECHATPAY_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def signed_headers(
    body: bytes, *, timestamp: int, nonce: str = "a" * 32, serial: str | None = None
) -> dict[str, str]:
    return {
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": serial or VECTORS["wechatpay_public_key_id"],
        "Wechatpay-Signature": wechat_sign(f"{timestamp}\n{nonce}\n".encode() + body + b"\n"),
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


# --- known-answer vectors -------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["request_signatures"], ids=lambda v: f"{v['method']} {v['url']}")
def test_request_signature_matches_the_sdk(vector: dict[str, str]) -> None:
    body = vector["body"].encode()
    message = request_message(
        vector["method"], vector["url"], int(vector["timestamp"]), vector["nonce"], body
    )
    assert message == vector["message"].encode()
    assert sign(MERCHANT_KEY, message) == vector["signature"]
    header = authorization_header(
        mchid=VECTORS["mchid"],
        serial_no=VECTORS["merchant_serial_no"],
        private_key=MERCHANT_KEY,
        method=vector["method"],
        target=vector["url"],
        body=body,
        timestamp=int(vector["timestamp"]),
        nonce=vector["nonce"],
    )
    assert parse_authorization(header) == parse_authorization(vector["authorization"])
    assert header == vector["authorization"]


@pytest.mark.parametrize("vector", VECTORS["response_signatures"], ids=lambda v: v["nonce"])
def test_response_signature_vectors_verify(vector: dict[str, str], keys: VerifierKeys) -> None:
    body = vector["body"].encode()
    assert response_message(vector["timestamp"], vector["nonce"], body) == vector["message"].encode()
    headers = {
        "Wechatpay-Timestamp": vector["timestamp"],
        "Wechatpay-Nonce": vector["nonce"],
        "Wechatpay-Serial": vector["serial"],
        "Wechatpay-Signature": vector["signature"],
    }
    now = int(vector["timestamp"]) + 10
    assert verify_signed_message(headers, body, keys=keys, now=now) == vector["serial"]


@pytest.mark.parametrize("vector", VECTORS["resources"], ids=lambda v: v["associated_data"] or "no-aad")
def test_resource_vectors_decrypt(vector: dict[str, str]) -> None:
    plaintext = decrypt_resource(
        VECTORS["apiv3_key"],
        nonce=vector["nonce"],
        associated_data=vector["associated_data"],
        ciphertext=vector["ciphertext"],
    )
    assert plaintext.decode() == vector["plaintext"]
    sealed = encrypt_resource(
        VECTORS["apiv3_key"],
        nonce=vector["nonce"],
        associated_data=vector["associated_data"],
        plaintext=plaintext,
    )
    assert sealed == vector["ciphertext"]


@pytest.mark.parametrize("vector", VECTORS["pay_signs"], ids=lambda v: f"{v['kind']}-{v['timestamp']}")
def test_pay_sign_matches_the_sdk(vector: dict[str, str]) -> None:
    common = {
        "appid": vector["appid"],
        "prepay_id": vector["prepay_id"],
        "private_key": MERCHANT_KEY,
        "timestamp": int(vector["timestamp"]),
        "nonce": vector["nonce"],
    }
    if vector["kind"] == "jsapi":
        params = jsapi_pay_params(**common)  # type: ignore[arg-type]
        package_line, signature = params["package"], params["pay_sign"]
        assert params["sign_type"] == "RSA"
    else:
        params = app_pay_params(mchid=VECTORS["mchid"], **common)  # type: ignore[arg-type]
        package_line, signature = params["prepay_id"], params["sign"]
        assert params["package"] == "Sign=WXPay"
        assert params["partner_id"] == VECTORS["mchid"]
    message = pay_sign_message(vector["appid"], vector["timestamp"], vector["nonce"], package_line)
    assert message == vector["message"].encode()
    assert signature == vector["signature"]


# --- response / notification signature negatives -------------------------------------------------

BODY = json.dumps({"prepay_id": "wx0112000019552265"}, separators=(",", ":")).encode()
NOW = 1_800_000_000


def test_tampered_body_fails(keys: VerifierKeys) -> None:
    headers = signed_headers(BODY, timestamp=NOW)
    with pytest.raises(BadSignatureError):
        verify_signed_message(headers, BODY.replace(b"wx01", b"wx02"), keys=keys, now=NOW)


def test_unknown_serial_fails(keys: VerifierKeys) -> None:
    headers = signed_headers(BODY, timestamp=NOW, serial="PUB_KEY_ID_0000000000000000000000000000000000")
    with pytest.raises(UnknownSerialError):
        verify_signed_message(headers, BODY, keys=keys, now=NOW)


@pytest.mark.parametrize(
    ("offset", "ok"), [(299, True), (-299, True), (300, False), (-300, False), (3600, False)]
)
def test_five_minute_window(offset: int, ok: bool, keys: VerifierKeys) -> None:
    headers = signed_headers(BODY, timestamp=NOW)
    if ok:
        verify_signed_message(headers, BODY, keys=keys, now=NOW + offset)
    else:
        with pytest.raises(StaleTimestampError):
            verify_signed_message(headers, BODY, keys=keys, now=NOW + offset)


@pytest.mark.parametrize(
    "dropped", ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial", "Wechatpay-Signature"]
)
def test_missing_header_fails(dropped: str, keys: VerifierKeys) -> None:
    headers = signed_headers(BODY, timestamp=NOW)
    del headers[dropped]
    with pytest.raises(MissingHeadersError):
        verify_signed_message(headers, BODY, keys=keys, now=NOW)


def test_non_numeric_timestamp_is_a_header_fault(keys: VerifierKeys) -> None:
    headers = signed_headers(BODY, timestamp=NOW) | {"Wechatpay-Timestamp": "1800000000000ms"}
    with pytest.raises(MissingHeadersError):
        verify_signed_message(headers, BODY, keys=keys, now=NOW)


def test_header_names_are_case_insensitive(keys: VerifierKeys) -> None:
    headers = {k.lower(): v for k, v in signed_headers(BODY, timestamp=NOW).items()}
    assert verify_signed_message(headers, BODY, keys=keys, now=NOW) == VECTORS["wechatpay_public_key_id"]


def test_signtest_probe_fails_as_bad_signature(keys: VerifierKeys) -> None:
    headers = signed_headers(BODY, timestamp=NOW) | {"Wechatpay-Signature": "WECHATPAY/SIGNTEST/abcdefghij=="}
    with pytest.raises(BadSignatureError):
        verify_signed_message(headers, BODY, keys=keys, now=NOW)


def test_unsupported_signature_type_fails(keys: VerifierKeys) -> None:
    headers = signed_headers(BODY, timestamp=NOW) | {"Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"}
    with pytest.raises(BadSignatureError):
        verify_signed_message(headers, BODY, keys=keys, now=NOW)


def test_signature_by_the_merchant_key_is_rejected(keys: VerifierKeys) -> None:
    headers = signed_headers(BODY, timestamp=NOW)
    headers["Wechatpay-Signature"] = sign(MERCHANT_KEY, response_message(str(NOW), "a" * 32, BODY))
    with pytest.raises(BadSignatureError):
        verify_signed_message(headers, BODY, keys=keys, now=NOW)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_body_mutation_fails_verification(data: st.DataObject) -> None:
    keys = VerifierKeys({VECTORS["wechatpay_public_key_id"]: WECHATPAY_KEY.public_key()})
    body = data.draw(st.binary(min_size=0, max_size=64), label="body")
    headers = signed_headers(body, timestamp=NOW)
    mutated = data.draw(st.binary(max_size=65).filter(lambda b: b != body), label="mutated")
    with pytest.raises(BadSignatureError):
        verify_signed_message(headers, mutated, keys=keys, now=NOW)


def test_bad_aes_tag_is_undecryptable() -> None:
    vector = VECTORS["resources"][0]
    sealed = bytearray(base64.b64decode(vector["ciphertext"]))
    sealed[-1] ^= 0x01
    with pytest.raises(UndecryptableError):
        decrypt_resource(
            VECTORS["apiv3_key"],
            nonce=vector["nonce"],
            associated_data=vector["associated_data"],
            ciphertext=base64.b64encode(bytes(sealed)).decode(),
        )


def test_wrong_associated_data_is_undecryptable() -> None:
    vector = VECTORS["resources"][0]
    with pytest.raises(UndecryptableError):
        decrypt_resource(
            VECTORS["apiv3_key"],
            nonce=vector["nonce"],
            associated_data="refund",
            ciphertext=vector["ciphertext"],
        )


# --- notifications --------------------------------------------------------------------------------


def notification_body(resource: dict[str, str] | None = None, **overrides: Any) -> bytes:
    vector = VECTORS["resources"][0]
    envelope: dict[str, Any] = {
        "id": "e86681ba-58b8-5574-a01e-7ebe22e4e8bf",
        "create_time": "2025-01-01T12:01:09+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": resource
        or {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": vector["ciphertext"],
            "associated_data": vector["associated_data"],
            "nonce": vector["nonce"],
        },
        **overrides,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def test_notification_parses_and_decrypts(credentials: MerchantCredentials, keys: VerifierKeys) -> None:
    body = notification_body()
    notification = parse_notification(
        signed_headers(body, timestamp=NOW), body, credentials=credentials, keys=keys, now=NOW + 5
    )
    assert notification.id == "e86681ba-58b8-5574-a01e-7ebe22e4e8bf"
    assert notification.event_type == "TRANSACTION.SUCCESS"
    assert notification.summary == "支付成功"
    assert notification.report == transaction_report(json.loads(VECTORS["resources"][0]["plaintext"]))
    assert isinstance(notification.report, TransactionReport)
    assert notification.report.payment is not None  # the vector is a paid transaction


def _reject(
    body: bytes, headers: dict[str, str], credentials: MerchantCredentials, keys: VerifierKeys
) -> str:
    with pytest.raises(NotificationRejected) as caught:
        parse_notification(headers, body, credentials=credentials, keys=keys, now=NOW)
    return caught.value.outcome


def test_notification_outcomes_in_order(credentials: MerchantCredentials, keys: VerifierKeys) -> None:
    body = notification_body()
    good = signed_headers(body, timestamp=NOW)
    # A stale AND unsigned message is reported as the earliest failed check.
    assert _reject(body, {"Wechatpay-Timestamp": str(NOW)}, credentials, keys) == "missing_headers"
    assert _reject(body, signed_headers(body, timestamp=NOW - 301), credentials, keys) == "stale"
    unknown = signed_headers(body, timestamp=NOW, serial="ABCDEF")
    assert _reject(body, unknown, credentials, keys) == "unknown_serial"
    assert _reject(body + b" ", good, credentials, keys) == "bad_signature"
    probe = good | {"Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + good["Wechatpay-Signature"]}
    assert _reject(body, probe, credentials, keys) == "bad_signature"


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (b"not json", "malformed"),
        (b"[1,2]", "malformed"),
        (notification_body(resource_type="plain"), "malformed"),
        (notification_body(id=None), "malformed"),
        (notification_body(resource={"nonce": "x"}), "malformed"),
        (
            notification_body(
                resource={"algorithm": "AEAD_AES_256_GCM", "nonce": "Ufp77nibJdao", "ciphertext": "AAAA"}
            ),
            "undecryptable",
        ),
        (
            notification_body(
                resource={"algorithm": "AEAD_SM4", "nonce": "Ufp77nibJdao", "ciphertext": "AAAA"}
            ),
            "undecryptable",
        ),
    ],
)
def test_signed_but_bad_payloads(
    body: bytes, outcome: str, credentials: MerchantCredentials, keys: VerifierKeys
) -> None:
    assert _reject(body, signed_headers(body, timestamp=NOW), credentials, keys) == outcome


def test_wrong_apiv3_key_is_undecryptable(tmp_path: Path, keys: VerifierKeys) -> None:
    other = load_credentials(write_bundle(tmp_path, apiv3_key="X" * 32))
    body = notification_body()
    assert _reject(body, signed_headers(body, timestamp=NOW), other, keys) == "undecryptable"


# --- credentials ----------------------------------------------------------------------------------


def test_repr_hides_secrets(credentials: MerchantCredentials) -> None:
    text = repr(credentials)
    assert VECTORS["apiv3_key"] not in text
    assert "PRIVATE" not in text
    assert VECTORS["mchid"] in text


def test_sandbox_private_key_is_never_read(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path)
    (bundle / "wechatpay_private_key.pem").write_text("not a key at all")
    (bundle / "wechatpay_private_key.pem").chmod(0)
    assert load_credentials(bundle).mchid == VECTORS["mchid"]


@pytest.mark.parametrize("missing", ["merchant.json", "merchant_private_key.pem"])
def test_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    bundle = write_bundle(tmp_path)
    (bundle / missing).unlink()
    with pytest.raises(CredentialsError, match=re.escape(missing)):
        load_credentials(bundle)


def test_short_apiv3_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="32 ASCII") as caught:
        load_credentials(write_bundle(tmp_path, apiv3_key="tooshort-secret"))
    assert "tooshort-secret" not in str(caught.value)


def test_garbage_private_key_is_refused(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path)
    (bundle / "merchant_private_key.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(CredentialsError, match=re.escape("merchant_private_key.pem")):
        load_credentials(bundle)


def test_platform_certificate_mode(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, wechatpay_public_key_id="")
    (bundle / "wechatpay_public_key.pem").unlink()
    cert_vector = next(v for v in VECTORS["resources"] if v["associated_data"] == "certificate")
    (bundle / "platform_cert.pem").write_text(cert_vector["plaintext"])
    creds = load_credentials(bundle)
    assert creds.platform_cert_serial_no == "3A8F6C2D1E0B9A8776655443322110FFEEDDCCBB"
    headers = signed_headers(BODY, timestamp=NOW, serial=creds.platform_cert_serial_no)
    assert (
        verify_signed_message(headers, BODY, keys=creds.verifier_keys(), now=NOW)
        == creds.platform_cert_serial_no
    )
