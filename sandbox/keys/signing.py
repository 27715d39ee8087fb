"""The sandbox's own WeChat Pay APIv3 signer and verifier, written from the protocol notes.

Pure functions over bytes: clocks and nonces are passed in. Kept apart from the merchant-side client
on purpose; both must pass the same known-answer vectors, so a shared misunderstanding cannot hide.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
AEAD_ALGORITHM = "AEAD_AES_256_GCM"
SIGNTEST_PREFIX = "WECHATPAY/SIGNTEST/"
MAX_SKEW_S = 300
_AUTH_PARAM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')
_AUTH_FIELDS = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")


class SignatureError(Exception):
    """A request's Authorization header is malformed, stale, unknown or does not verify."""


@dataclass(frozen=True)
class Authorization:
    """The parameters of a `WECHATPAY2-SHA256-RSA2048` Authorization header."""

    mchid: str
    nonce_str: str
    signature: str
    timestamp: str
    serial_no: str


# --- messages -------------------------------------------------------------------------------------


def request_message(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """`METHOD\\nrequest-target\\ntimestamp\\nnonce\\nbody\\n`, over the raw target and raw body."""
    head = f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """`timestamp\\nnonce\\nbody\\n`: signed responses and notifications (204: empty body line)."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def pay_sign_message(kind: str, appid: str, timestamp: str, nonce: str, prepay_id: str) -> bytes:
    """JSAPI signs `package` (`prepay_id=wx…`); APP signs the bare prepay_id."""
    package = f"prepay_id={prepay_id}" if kind == "jsapi" else prepay_id
    return f"{appid}\n{timestamp}\n{nonce}\n{package}\n".encode()


# --- RSA ------------------------------------------------------------------------------------------


def rsa_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """base64(RSASSA-PKCS1-v1_5 / SHA-256). PKCS#1 v1.5 is deterministic, so vectors compare exactly."""
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# --- requests (merchant → WeChat) -----------------------------------------------------------------


def parse_authorization(header: str) -> Authorization:
    schema, _, params = header.strip().partition(" ")
    if schema != SCHEMA:
        raise SignatureError("Authorization schema is not WECHATPAY2-SHA256-RSA2048")
    values: dict[str, str] = {}
    for part in params.split(","):
        match = _AUTH_PARAM.fullmatch(part)
        if match is None:
            raise SignatureError("Authorization header is malformed")
        values[match.group(1)] = match.group(2)
    missing = [name for name in _AUTH_FIELDS if not values.get(name)]
    if missing:
        raise SignatureError(f"Authorization header lacks {', '.join(missing)}")
    return Authorization(**{name: values[name] for name in _AUTH_FIELDS})


def build_authorization(
    private_key: rsa.RSAPrivateKey,
    *,
    mchid: str,
    serial_no: str,
    method: str,
    target: str,
    body: bytes,
    timestamp: str,
    nonce: str,
) -> str:
    """The merchant side of the handshake (tests and tools use it to call the sandbox)."""
    signature = rsa_sign(private_key, request_message(method, target, timestamp, nonce, body))
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def verify_request(
    auth: Authorization,
    public_key: rsa.RSAPublicKey,
    *,
    method: str,
    target: str,
    body: bytes,
    now: int,
) -> None:
    """Raise SignatureError unless the timestamp is fresh and the signature verifies."""
    if not auth.timestamp.isdigit() or abs(now - int(auth.timestamp)) > MAX_SKEW_S:
        raise SignatureError("Http头Authorization中的timestamp与发起请求的时间不得超过5分钟")
    message = request_message(method, target, auth.timestamp, auth.nonce_str, body)
    if not rsa_verify(public_key, message, auth.signature):
        raise SignatureError("签名错误,请检查后再试")


# --- responses and notifications (WeChat → merchant) ---------------------------------------------


def signed_headers(
    private_key: rsa.RSAPrivateKey, serial: str, body: bytes, *, timestamp: str, nonce: str
) -> dict[str, str]:
    return {
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": rsa_sign(private_key, response_message(timestamp, nonce, body)),
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
    }


def signtest_signature(nonce: str) -> str:
    """A deliberately invalid signature, as WeChat's occasional probe sends it."""
    return SIGNTEST_PREFIX + nonce


# --- AES-256-GCM resources ------------------------------------------------------------------------


def encrypt_resource(apiv3_key: str, nonce: str, associated_data: str, plaintext: bytes) -> str:
    """base64(ciphertext ‖ 16-byte tag); key = APIv3 key bytes, IV = nonce bytes, AAD = associated_data."""
    sealed = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return base64.b64encode(sealed).decode()


def decrypt_resource(apiv3_key: str, nonce: str, associated_data: str, ciphertext: str) -> bytes:
    try:
        return AESGCM(apiv3_key.encode()).decrypt(
            nonce.encode(), base64.b64decode(ciphertext), associated_data.encode()
        )
    except (InvalidTag, binascii.Error) as exc:
        raise ValueError("resource does not decrypt with this APIv3 key") from exc


# --- client pay parameters ------------------------------------------------------------------------


def verify_pay_sign(
    public_key: rsa.RSAPublicKey,
    *,
    kind: str,
    appid: str,
    timestamp: str,
    nonce: str,
    prepay_id: str,
    signature: str,
) -> bool:
    """Check a JSAPI `paySign` / APP `sign` the merchant computed with its API private key."""
    return rsa_verify(public_key, pay_sign_message(kind, appid, timestamp, nonce, prepay_id), signature)


def same_text(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())
