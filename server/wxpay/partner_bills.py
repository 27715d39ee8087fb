"""A sub-merchant's fund-flow bill, applied for by its service provider (服务商).

`GET /v3/bill/sub-merchant-fundflowbill?sub_mchid=…&bill_date=…&account_type=BASIC&algorithm=
AEAD_AES_256_GCM&tar_type=GZIP` answers signed JSON `{download_bill_count, download_bill_list: [{
bill_sequence, download_url, encrypt_key, nonce, hash_type, hash_value}]}` [official: partner docs,
"申请单个子商户资金账单" and "下载单个子商户资金账单"]. Each part is downloaded (signed, unsigned
answer), decrypted, then decompressed; parts join in `bill_sequence` order. `encrypt_key` is the part's
AES-256 key encrypted with the provider's merchant (API certificate) public key, so the provider's
private key opens it; RSA-OAEP with SHA-1 as for every other WeChat Pay RSA encryption, AES-GCM with
the part's `nonce` and no associated data, the 16-byte tag after the ciphertext, and `hash_value` the
SHA-1 of the part's plain file as for the other bills [inf: the docs name the algorithm, not these
parameters; the sandbox plays the same].
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import quote

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.domain.errors import ProviderRejectedError
from server.wxpay.client import WeChatPayClient
from server.wxpay.provider_errors import unavailable

SUB_FUND_FLOW = "/v3/bill/sub-merchant-fundflowbill"
ALGORITHM = "AEAD_AES_256_GCM"
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303


def sub_fund_flow_path(sub_mchid: str, day: date) -> str:
    return (
        f"{SUB_FUND_FLOW}?sub_mchid={quote(sub_mchid, safe='')}&bill_date={day.isoformat()}"
        f"&account_type=BASIC&algorithm={ALGORITHM}&tar_type=GZIP"
    )


def fetch_sub_fund_flow(
    client: WeChatPayClient,
    sub_mchid: str,
    day: date,
    download: Callable[[str], bytes],
    plain: Callable[[bytes, str], bytes | None],
) -> bytes | None:
    """The day's file, or None when WeChat has no statement. `download(url)` fetches a part's bytes;
    `plain(decrypted, hash_value)` gunzips and checks the hash (None: it did not match)."""
    try:
        applied = client.signed_get("sub_fundflow_bill", sub_fund_flow_path(sub_mchid, day))
    except ProviderRejectedError as error:
        if error.metadata.get("provider_code") == "NO_STATEMENT_EXIST":
            return None
        raise
    parts = _parts(applied)
    content = bytearray()
    for part in parts:
        sealed = download(str(part.get("download_url", "")))
        decrypted = _open(client, part, sealed)
        checked = plain(decrypted, str(part.get("hash_value", "")).lower())
        if checked is None:
            raise unavailable(
                "bill file does not match the hash WeChat Pay gave; not parsed",
                provider_code="BILL_HASH_MISMATCH",
            )
        content += checked
    return bytes(content)


def _parts(applied: dict[str, Any]) -> list[dict[str, Any]]:
    listed = applied.get("download_bill_list")
    if not isinstance(listed, list) or not listed or not all(isinstance(p, dict) for p in listed):
        raise unavailable("sub-merchant bill answer lists no file", provider_code="BILL_CORRUPT")
    return sorted(listed, key=lambda p: int(p.get("bill_sequence") or 0))


def _open(client: WeChatPayClient, part: dict[str, Any], sealed: bytes) -> bytes:
    try:
        key = client.credentials.merchant_private_key.decrypt(
            base64.b64decode(str(part.get("encrypt_key", "")), validate=True), _OAEP
        )
        return AESGCM(key).decrypt(str(part.get("nonce", "")).encode(), sealed, None)
    except (ValueError, InvalidTag, binascii.Error) as exc:
        raise unavailable(
            f"sub-merchant bill does not decrypt ({type(exc).__name__})", provider_code="BILL_CORRUPT"
        ) from None
