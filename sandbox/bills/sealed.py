"""A sub-merchant's fund-flow bill as WeChat serves it to the provider: encrypted, one part here.

`GET /v3/bill/sub-merchant-fundflowbill` (provider only, `sub_mchid` required): signed JSON
`{download_bill_count, download_bill_list: [{bill_sequence, download_url, encrypt_key, nonce,
hash_type, hash_value}]}`. The file (gzip when asked) is sealed with AES-256-GCM under a fresh key and
`nonce`, no associated data; `encrypt_key` is that key under the provider's merchant public key
(RSA-OAEP, SHA-1), `hash_value` the SHA-1 of the plain file. server/wxpay/partner_bills.py opens it.
A direct merchant asking is `NO_AUTH`; another provider's sub-merchant `NO_AUTH`; an unknown one
`MCH_NOT_EXISTS`, as the partner API answers them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sandbox.engine.state import Sandbox

ALGORITHMS = {"AEAD_AES_256_GCM"}
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303


def seal(provider: Sandbox, content: bytes, *, compressed: bool) -> tuple[bytes, dict[str, str]]:
    """(the bytes the download serves, the part's fields of the apply answer but its URL)."""
    key = os.urandom(32)
    nonce = secrets.token_hex(6)  # 12 characters: GCM's 96-bit nonce, as WeChat's strings are
    plain = gzip.compress(content, mtime=0) if compressed else content
    sealed = AESGCM(key).encrypt(nonce.encode(), plain, None)
    digest = hashlib.sha1(content).hexdigest()  # noqa: S324 - WeChat's documented bill hash
    if provider.settings.config.bill_hash_mismatch:
        digest = hashlib.sha1(content + b"tampered").hexdigest()  # noqa: S324
    encrypted_key = provider.credentials.merchant_public_key.encrypt(key, _OAEP)
    return sealed, {
        "bill_sequence": "1",
        "encrypt_key": base64.b64encode(encrypted_key).decode(),
        "nonce": nonce,
        "hash_type": "SHA1",
        "hash_value": digest,
    }
