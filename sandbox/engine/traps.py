"""Notification bodies with deliberate decryption faults and raw-body traps (issue 11).

Decryption faults are alerting drills: a notification that is correctly signed but does not decrypt,
because it was sealed with another APIv3 key (a merchant who reset the key in the merchant platform and
not in its config) or because the envelope names other `associated_data` than was sealed
(the AES-GCM tag failures of klover2/wechatpay-node-v3-ts#42 and #18).

Raw-body traps: field values with non-ASCII text and escaped newlines in both the outer JSON and the
decrypted resource, and literal newlines between the outer JSON's members (JSON whitespace). A verifier
that re-serialises the parsed body (`ensure_ascii`, key order, spacing) or re-reads it line by line
(wechatpay-java#304: `BufferedReader.readLine()` re-joined) changes the bytes and fails.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from sandbox.config import Faults
from sandbox.keys import signing

TRAP_TEXT = "沙箱陷阱 ✓ «raw body»\n第二行\\n不是换行\r\n"  # CJK, symbols, real and escaped-looking newlines


def _other_key(apiv3_key: str) -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(32))
        if candidate != apiv3_key:
            return candidate


def seal(apiv3_key: str, faults: Faults, nonce: str, original_type: str, plaintext: bytes) -> dict[str, str]:
    """The encrypted `resource` object, with any decryption fault applied."""
    key = _other_key(apiv3_key) if faults.notify_wrong_apiv3_key else apiv3_key
    named = f"{original_type}-tampered" if faults.notify_wrong_associated_data else original_type
    return {
        "original_type": original_type,
        "algorithm": signing.AEAD_ALGORITHM,
        "ciphertext": signing.encrypt_resource(key, nonce, original_type, plaintext),
        "associated_data": named,
        "nonce": nonce,
    }


def trap_resource(resource: dict[str, Any], faults: Faults) -> dict[str, Any]:
    """Non-ASCII and newlines inside a field WeChat fills in itself (never the merchant's own data)."""
    if not faults.raw_body_traps:
        return resource
    trapped = dict(resource)
    if "trade_state_desc" in trapped:
        trapped["trade_state_desc"] = f"{trapped['trade_state_desc']}\n{TRAP_TEXT}"
    if "user_received_account" in trapped:
        trapped["user_received_account"] = f"{trapped['user_received_account']}\n{TRAP_TEXT}"
    return trapped


def envelope_bytes(envelope: dict[str, Any], faults: Faults) -> bytes:
    """The exact POSTed body: compact UTF-8 JSON, or with traps a summary full of them and a newline
    after every member (valid JSON that is not what `json.dumps` would write)."""
    if not faults.raw_body_traps:
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    trapped = {**envelope, "summary": f"{envelope['summary']}\n{TRAP_TEXT}"}
    members = [f"{_compact(key)}:{_compact(value)}" for key, value in trapped.items()]
    return ("{\n" + ",\r\n".join(members) + "\n}\n").encode()


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
