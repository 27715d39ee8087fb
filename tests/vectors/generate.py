"""Generate WeChat Pay APIv3 known-answer vectors with the public `wechatpayv3` SDK's own functions.

The point is provenance: every signature, authorization header and pay sign below is produced by code
nobody in this repository wrote (`wechatpayv3.utils.build_authorization`, `rsa_sign`, `rsa_verify`,
`aes_decrypt`, `WeChatPay.sign`), so our implementation and the sandbox are checked against an
independent reference. The SDK has no AES-GCM *encrypt*, so resources are sealed with `cryptography`
and then opened with the SDK's `aes_decrypt` before they are written.

Run: `.venv/bin/python tests/vectors/generate.py`. Keys in `keys/` are created once (throwaway, test
only) and reused, so re-running reproduces the same JSON byte for byte.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import wechatpayv3.utils as sdk_utils
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from wechatpayv3 import WeChatPay, WeChatPayType

HERE = Path(__file__).resolve().parent
KEYS_DIR = HERE / "keys"
OUTPUT = HERE / "wechatpay_v3.json"

APIV3_KEY = "0123456789abcdefOrderpayTestKey!"  # exactly 32 ASCII bytes
MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
MERCHANT_SERIAL_NO = "5E3D1F8A2B4C6D7E8F90A1B2C3D4E5F60718293A"
PLATFORM_CERT_SERIAL_NO = "3A8F6C2D1E0B9A8776655443322110FFEEDDCCBB"
WECHATPAY_PUBLIC_KEY_ID = "PUB_KEY_ID_0119000001092025010100000000000001"


def _write_key_pair(stem: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (KEYS_DIR / f"{stem}_private_key.pem").write_bytes(private_pem)
    (KEYS_DIR / f"{stem}_public_key.pem").write_bytes(public_pem)


def ensure_keys() -> None:
    KEYS_DIR.mkdir(exist_ok=True)
    for stem in ("merchant", "wechatpay"):
        if not (KEYS_DIR / f"{stem}_private_key.pem").exists():
            _write_key_pair(stem)


def _read(name: str) -> str:
    return (KEYS_DIR / name).read_text()


def platform_certificate_pem() -> str:
    """A self-signed X.509 cert over the wechatpay key, as `/v3/certificates` would deliver it.

    Serial and validity are fixed and PKCS#1 v1.5 is deterministic, so the PEM is reproducible.
    """
    key = serialization.load_pem_private_key(_read("wechatpay_private_key.pem").encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orderpay test platform certificate")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int(PLATFORM_CERT_SERIAL_NO, 16))
        .not_valid_before(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@contextlib.contextmanager
def frozen_sdk_clock(timestamp: int) -> Iterator[None]:
    """`build_authorization` reads `time.time()` from its module; pin it for one call."""
    real_time = sdk_utils.time
    sdk_utils.time = SimpleNamespace(time=lambda: float(timestamp))  # type: ignore[assignment]
    try:
        yield
    finally:
        sdk_utils.time = real_time


def compact_json(data: dict[str, Any]) -> str:
    """The bytes orderpay's client sends: compact separators, UTF-8, no \\u escapes."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _parse_authorization(header: str) -> dict[str, str]:
    _, _, params = header.partition(" ")
    fields = dict(part.split("=", 1) for part in params.split(","))
    return {k: v.strip('"') for k, v in fields.items()}


def request_signature(method: str, url: str, timestamp: int, nonce: str, body: str) -> dict[str, str]:
    merchant_key = sdk_utils.load_private_key(_read("merchant_private_key.pem"))
    with frozen_sdk_clock(timestamp):
        authorization = sdk_utils.build_authorization(
            url, method, MCHID, MERCHANT_SERIAL_NO, merchant_key, data=body or None, nonce_str=nonce
        )
    message = f"{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n"
    signature = _parse_authorization(authorization)["signature"]
    assert signature == sdk_utils.rsa_sign(merchant_key, message), "SDK message differs from ours"
    return {
        "method": method,
        "url": url,
        "timestamp": str(timestamp),
        "nonce": nonce,
        "body": body,
        "message": message,
        "signature": signature,
        "authorization": authorization,
    }


def response_signature(timestamp: int, nonce: str, body: str) -> dict[str, str]:
    wechatpay_key = sdk_utils.load_private_key(_read("wechatpay_private_key.pem"))
    message = f"{timestamp}\n{nonce}\n{body}\n"
    signature = sdk_utils.rsa_sign(wechatpay_key, message)
    public_key = sdk_utils.load_public_key(_read("wechatpay_public_key.pem"))
    assert sdk_utils.rsa_verify(str(timestamp), nonce, body, signature, public_key)
    return {
        "timestamp": str(timestamp),
        "nonce": nonce,
        "body": body,
        "message": message,
        "signature": signature,
        "serial": WECHATPAY_PUBLIC_KEY_ID,
    }


def resource(nonce: str, associated_data: str, plaintext: str) -> dict[str, str]:
    sealed = AESGCM(APIV3_KEY.encode()).encrypt(nonce.encode(), plaintext.encode(), associated_data.encode())
    ciphertext = base64.b64encode(sealed).decode()
    opened = sdk_utils.aes_decrypt(nonce, ciphertext, associated_data, APIV3_KEY)
    assert opened == plaintext, "SDK aes_decrypt disagrees"
    return {
        "nonce": nonce,
        "associated_data": associated_data,
        "plaintext": plaintext,
        "ciphertext": ciphertext,
    }


def pay_sign(kind: str, timestamp: int, nonce: str, prepay_id: str) -> dict[str, str]:
    sdk = WeChatPay(
        wechatpay_type=WeChatPayType.JSAPI if kind == "jsapi" else WeChatPayType.APP,
        mchid=MCHID,
        private_key=_read("merchant_private_key.pem"),
        cert_serial_no=MERCHANT_SERIAL_NO,
        appid=APPID,
        apiv3_key=APIV3_KEY,
        public_key=_read("wechatpay_public_key.pem"),
        public_key_id=WECHATPAY_PUBLIC_KEY_ID,
    )
    fourth = f"prepay_id={prepay_id}" if kind == "jsapi" else prepay_id
    fields = [APPID, str(timestamp), nonce, fourth]
    return {
        "kind": kind,
        "appid": APPID,
        "timestamp": str(timestamp),
        "nonce": nonce,
        "prepay_id": prepay_id,
        "message": "".join(f"{f}\n" for f in fields),
        "signature": sdk.sign(fields),
    }


JSAPI_BODY = {
    "appid": APPID,
    "mchid": MCHID,
    "description": "VIP 月卡 - 30 天会员",
    "out_trade_no": "OP20250101000000001",
    "time_expire": "2025-01-01T12:30:00+08:00",
    "attach": "订单备注",
    "notify_url": "https://merchant.example.com/wxpay/notify",
    "amount": {"total": 1990, "currency": "CNY"},
    "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
}
APP_BODY = {k: v for k, v in JSAPI_BODY.items() if k != "payer"}
REFUND_BODY = {
    "out_trade_no": "OP20250101000000001",
    "out_refund_no": "RF20250102000000001",
    "reason": "用户申请退款",
    "amount": {"refund": 990, "total": 1990, "currency": "CNY"},
}
TRANSACTION = {
    "mchid": MCHID,
    "appid": APPID,
    "out_trade_no": "OP20250101000000001",
    "transaction_id": "4200002421202501017102519265",
    "trade_type": "JSAPI",
    "trade_state": "SUCCESS",
    "trade_state_desc": "支付成功",
    "bank_type": "OTHERS",
    "attach": "订单备注",
    "success_time": "2025-01-01T12:01:09+08:00",
    "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    "amount": {"total": 1990, "payer_total": 1990, "currency": "CNY", "payer_currency": "CNY"},
}
REFUND_NOTICE = {
    "mchid": MCHID,
    "transaction_id": "4200002421202501017102519265",
    "out_trade_no": "OP20250101000000001",
    "refund_id": "50200207182025010200011301001",
    "out_refund_no": "RF20250102000000001",
    "refund_status": "SUCCESS",
    "success_time": "2025-01-02T09:00:05+08:00",
    "user_received_account": "支付用户零钱",
    "amount": {"total": 1990, "refund": 990, "payer_total": 1990, "payer_refund": 990},
}


def build_vectors() -> dict[str, Any]:
    ts = 1735704000  # 2025-01-01T12:00:00+08:00
    return {
        "apiv3_key": APIV3_KEY,
        "mchid": MCHID,
        "appid": APPID,
        "merchant_serial_no": MERCHANT_SERIAL_NO,
        "wechatpay_public_key_id": WECHATPAY_PUBLIC_KEY_ID,
        "request_signatures": [
            request_signature(
                "GET",
                f"/v3/pay/transactions/out-trade-no/OP20250101000000001?mchid={MCHID}",
                ts,
                "593BEC0C930BF1AFEB40B4A08C8FB242",
                "",
            ),
            request_signature(
                "POST",
                "/v3/pay/transactions/jsapi",
                ts + 1,
                "A1B2C3D4E5F60718293A4B5C6D7E8F90",
                compact_json(JSAPI_BODY),
            ),
            request_signature(
                "POST",
                "/v3/refund/domestic/refunds",
                ts + 2,
                "0F1E2D3C4B5A69788796A5B4C3D2E1F0",
                compact_json(REFUND_BODY),
            ),
            request_signature(
                "POST",
                "/v3/pay/transactions/out-trade-no/OP20250101000000001/close",
                ts + 3,
                "C0FFEE00C0FFEE00C0FFEE00C0FFEE00",
                compact_json({"mchid": MCHID}),
            ),
            # What the SDK itself sends (default json.dumps: spaces, \uXXXX escapes): same rule, other bytes.
            request_signature(
                "POST",
                "/v3/pay/transactions/app",
                ts + 4,
                "DEADBEEFDEADBEEFDEADBEEFDEADBEEF",
                json.dumps(APP_BODY),
            ),
            request_signature("GET", "/v3/certificates", ts + 5, "1234567890ABCDEF1234567890ABCDEF", ""),
        ],
        "response_signatures": [
            response_signature(
                ts + 1,
                "d824f2e086d3c1df967785d13fcd22ef",
                compact_json({"prepay_id": "wx01120000195522657a690389285100"}),
            ),
            response_signature(ts + 3, "8d1a3f3e0c6b4f5aa2c9e0b1d2c3e4f5", ""),  # 204 close: empty body
            response_signature(ts, "0a1b2c3d4e5f60718293a4b5c6d7e8f9", compact_json(TRANSACTION)),
            response_signature(
                ts + 6,
                "ffeeddccbbaa99887766554433221100",
                compact_json({"code": "ORDER_NOT_EXIST", "message": "订单不存在"}),
            ),
        ],
        "resources": [
            resource("Ufp77nibJdao", "transaction", compact_json(TRANSACTION)),
            resource("9aX2kLm0PqRs", "refund", compact_json(REFUND_NOTICE)),
            resource("61f9c719728a", "certificate", platform_certificate_pem()),
            resource("Zz0000000000", "", compact_json({"note": "empty associated_data"})),
        ],
        "pay_signs": [
            pay_sign("jsapi", ts + 2, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "wx01120000195522657a690389285100"),
            pay_sign("app", ts + 2, "7B1C2D3E4F5061728394A5B6C7D8E9F0", "wx01120000195522657a690389285100"),
            pay_sign(
                "jsapi", ts + 9, "00000000000000000000000000000000", "wx201410272009395522657a690389285100"
            ),
        ],
    }


def main() -> None:
    ensure_keys()
    vectors = build_vectors()
    OUTPUT.write_text(json.dumps(vectors, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(HERE.parent.parent)}")


if __name__ == "__main__":
    main()
