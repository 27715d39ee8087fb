"""WECHATPAY2-SHA256-RSA2048: request signing, response/notification verification, client pay signs.

Pure functions over bytes (research/wechatpay-v3.md §8, §9, §11). Every message is a list of lines,
each terminated by `\\n`, the last one included. Signatures are base64 RSASSA-PKCS1-v1_5 over SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from server.wxpay.errors import (
    BadSignatureError,
    MissingHeadersError,
    StaleTimestampError,
    UnknownSerialError,
)

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MAX_CLOCK_SKEW_S = 300
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
HEADER_SIGNATURE = "Wechatpay-Signature"
HEADER_TIMESTAMP = "Wechatpay-Timestamp"
HEADER_NONCE = "Wechatpay-Nonce"
HEADER_SERIAL = "Wechatpay-Serial"
HEADER_SIGNATURE_TYPE = "Wechatpay-Signature-Type"
REQUIRED_HEADERS = (HEADER_SIGNATURE, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SERIAL)


def new_nonce() -> str:
    """32 uppercase hex characters, like the official SDKs."""
    return secrets.token_hex(16).upper()


def _lines(*parts: bytes) -> bytes:
    return b"".join(part + b"\n" for part in parts)


def request_message(method: str, target: str, timestamp: int, nonce: str, body: bytes) -> bytes:
    """`METHOD\\nTARGET\\nTS\\nNONCE\\nBODY\\n`; TARGET is the path with its query exactly as sent."""
    return _lines(method.upper().encode(), target.encode(), str(timestamp).encode(), nonce.encode(), body)


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """`TS\\nNONCE\\nBODY\\n` for responses and notifications; a 204 signs an empty body line."""
    return _lines(timestamp.encode(), nonce.encode(), body)


def sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def signature_valid(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def authorization_header(
    *,
    mchid: str,
    serial_no: str,
    private_key: rsa.RSAPrivateKey,
    method: str,
    target: str,
    body: bytes,
    timestamp: int,
    nonce: str,
) -> str:
    signature = sign(private_key, request_message(method, target, timestamp, nonce, body))
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def parse_authorization(header: str) -> dict[str, str]:
    """The `key="value"` pairs of an Authorization header (order-insensitive); {} if the schema differs."""
    schema, _, params = header.partition(" ")
    if schema != SCHEMA:
        return {}
    pairs: dict[str, str] = {}
    for item in params.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            pairs[key] = value.strip('"')
    return pairs


@dataclass(frozen=True)
class VerifierKeys:
    """WeChat Pay public keys by the serial WeChat sends in `Wechatpay-Serial`.

    A public-key id (`PUB_KEY_ID_…`) maps to the WeChat Pay public key; platform certificate serials map
    to their certificates' keys. Several may coexist during rotation or mode migration.
    """

    by_serial: Mapping[str, rsa.RSAPublicKey] = field(default_factory=dict)

    def get(self, serial: str) -> rsa.RSAPublicKey | None:
        return self.by_serial.get(serial) or self.by_serial.get(serial.upper())

    def merged(self, extra: Mapping[str, rsa.RSAPublicKey]) -> VerifierKeys:
        return VerifierKeys({**self.by_serial, **extra})

    @property
    def serials(self) -> frozenset[str]:
        return frozenset(self.by_serial)


@dataclass(frozen=True)
class SignedHeaders:
    signature: str
    timestamp: str
    nonce: str
    serial: str


def header_lookup(headers: Mapping[str, str]) -> dict[str, str]:
    """Case-insensitive view: HTTP header names are case-insensitive, plain dicts are not."""
    return {name.lower(): value for name, value in headers.items()}


def read_signed_headers(headers: Mapping[str, str]) -> SignedHeaders | None:
    """The `Wechatpay-*` signature headers, or None when any is absent or empty."""
    lower = header_lookup(headers)
    values = [lower.get(name.lower(), "").strip() for name in REQUIRED_HEADERS]
    if not all(values):
        return None
    return SignedHeaders(*values)


def verify_signed_message(
    headers: Mapping[str, str],
    body: bytes,
    *,
    keys: VerifierKeys,
    now: float,
    max_skew_s: int = MAX_CLOCK_SKEW_S,
) -> str:
    """Check a WeChat-signed response or notification in the documented order; return the serial used.

    Raises MissingHeadersError, StaleTimestampError, UnknownSerialError or BadSignatureError. The probe
    `WECHATPAY/SIGNTEST/…` is deliberately not special-cased: it fails as a bad signature.
    """
    signed = read_signed_headers(headers)
    if signed is None:
        raise MissingHeadersError(f"missing one of {', '.join(REQUIRED_HEADERS)}")
    # ASCII digits only and bounded: str.isdigit() takes "²", and 400 digits overflow the float maths.
    if _UNIX_SECONDS.fullmatch(signed.timestamp) is None:
        raise MissingHeadersError(f"{HEADER_TIMESTAMP} is not a unix time in seconds")
    if abs(now - int(signed.timestamp)) >= max_skew_s:
        raise StaleTimestampError(f"{HEADER_TIMESTAMP} is more than {max_skew_s}s from now")
    public_key = keys.get(signed.serial)
    if public_key is None:
        raise UnknownSerialError(f"{HEADER_SERIAL} {signed.serial[:64]!r} is not a known key")
    signature_type = header_lookup(headers).get(HEADER_SIGNATURE_TYPE.lower(), SCHEMA)
    if signature_type != SCHEMA:
        raise BadSignatureError(f"unsupported {HEADER_SIGNATURE_TYPE}")
    message = response_message(signed.timestamp, signed.nonce, body)
    if not signature_valid(public_key, message, signed.signature):
        raise BadSignatureError("signature does not verify")
    return signed.serial


def pay_sign_message(appid: str, timestamp: str, nonce: str, package_line: str) -> bytes:
    """JSAPI/mini-program: fourth line `prepay_id=wx…`; APP: the bare prepay id (research §11)."""
    return _lines(appid.encode(), timestamp.encode(), nonce.encode(), package_line.encode())


def jsapi_pay_params(
    *, appid: str, prepay_id: str, private_key: rsa.RSAPrivateKey, timestamp: int, nonce: str
) -> dict[str, str]:
    """Parameters for `WeixinJSBridge.invoke('getBrandWCPayRequest')` / `wx.requestPayment`.

    Keys follow the proto's `JsapiPayParams` field names.
    """
    package = f"prepay_id={prepay_id}"
    message = pay_sign_message(appid, str(timestamp), nonce, package)
    return {
        "app_id": appid,
        "time_stamp": str(timestamp),
        "nonce_str": nonce,
        "package": package,
        "sign_type": "RSA",
        "pay_sign": sign(private_key, message),
    }


def app_pay_params(
    *, appid: str, mchid: str, prepay_id: str, private_key: rsa.RSAPrivateKey, timestamp: int, nonce: str
) -> dict[str, str]:
    """Parameters for the App OpenSDK `PayReq`; keys follow the proto's `AppPayParams` field names."""
    message = pay_sign_message(appid, str(timestamp), nonce, prepay_id)
    return {
        "app_id": appid,
        "partner_id": mchid,
        "prepay_id": prepay_id,
        "package": "Sign=WXPay",
        "nonce_str": nonce,
        "time_stamp": str(timestamp),
        "sign": sign(private_key, message),
    }
