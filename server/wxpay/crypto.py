"""AEAD_AES_256_GCM, as used for notification resources and `/v3/certificates` entries (research §7, §10).

Key = the APIv3 key as 32 ASCII bytes, IV = the 12-character nonce, AAD = `associated_data` (empty when
absent), data = base64(ciphertext || 16-byte tag).
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.wxpay.errors import UndecryptableError

ALGORITHM = "AEAD_AES_256_GCM"


def decrypt_resource(apiv3_key: str, *, nonce: str, associated_data: str, ciphertext: str) -> bytes:
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
        return AESGCM(apiv3_key.encode()).decrypt(nonce.encode(), sealed, associated_data.encode())
    except (binascii.Error, InvalidTag, ValueError):
        # One outcome for every failure: which part was wrong is nobody's business but the attacker's.
        raise UndecryptableError("resource does not decrypt with the APIv3 key") from None


def encrypt_resource(apiv3_key: str, *, nonce: str, associated_data: str, plaintext: bytes) -> str:
    """The inverse, for tests and fakes: base64(AES-256-GCM(plaintext) || tag)."""
    sealed = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return base64.b64encode(sealed).decode("ascii")


def encrypt_sensitive(public_key: rsa.RSAPublicKey, plaintext: str) -> str:
    """敏感信息加密: RSAES-OAEP (SHA-1, MGF1-SHA-1) under a WeChat Pay key, base64 (research §7)."""
    sealed = public_key.encrypt(
        plaintext.encode(),
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303 - WeChat's scheme
    )
    return base64.b64encode(sealed).decode("ascii")


def decrypt_sensitive(private_key: rsa.RSAPrivateKey, sealed: str) -> str:
    """The inverse, with our own key: what WeChat seals to the merchant (the echo self-test's answer)."""
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    try:
        return private_key.decrypt(base64.b64decode(sealed, validate=True), oaep).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise UndecryptableError(f"does not decrypt with the merchant key ({type(exc).__name__})") from None
