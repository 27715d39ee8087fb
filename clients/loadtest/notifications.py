"""Signed, encrypted `TRANSACTION.SUCCESS` notifications, built the way WeChat Pay builds them.

The notify storm signs its own notifications with the bundle's WeChat Pay private key and APIv3 key
(the sandbox's signer, so both stay one implementation) and POSTs them straight to the sidecar. All
signing happens before the storm starts: RSA signing is the sender's cost, not the receiver's, and
must not slow the measured part down. Copies of one notification carry the same `id`, body and
headers, like WeChat re-sending an event it thinks was lost.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sandbox.keys import signing
from sandbox.keys.bundle import Credentials, load_credentials

CHINA = timezone(timedelta(hours=8))
SANDBOX_PAYER_OPENID = "oLoadtest_payer_openid_000000"


@dataclass(frozen=True)
class SignedNotification:
    out_trade_no: str
    body: bytes
    headers: dict[str, str]


class NotificationSigner:
    """Builds notifications for one merchant bundle (public-key mode: `Wechatpay-Serial` = key id)."""

    def __init__(self, credentials: Credentials) -> None:
        self._creds = credentials

    @classmethod
    def from_dir(cls, credentials_dir: Path) -> NotificationSigner:
        return cls(load_credentials(credentials_dir))

    def transaction_success(
        self, out_trade_no: str, total_fee: int, *, signed_at: float | None = None
    ) -> SignedNotification:
        """`signed_at` (unix seconds) back-dates the signature, as a captured and replayed one would be."""
        now = datetime.now(UTC)
        resource = self._transaction(out_trade_no, total_fee, now)
        body = self._envelope(resource, now)
        timestamp = str(int(time.time() if signed_at is None else signed_at))
        headers = signing.signed_headers(
            self._creds.wechatpay_private_key,
            self._creds.wechatpay_public_key_id,
            body,
            timestamp=timestamp,
            nonce=secrets.token_hex(16),
        )
        headers["Content-Type"] = "application/json"
        return SignedNotification(out_trade_no, body, headers)

    def _transaction(self, out_trade_no: str, total_fee: int, now: datetime) -> dict[str, Any]:
        return {
            "appid": self._creds.appid,
            "mchid": self._creds.mchid,
            "out_trade_no": out_trade_no,
            "transaction_id": "4200" + now.astimezone(CHINA).strftime("%Y%m%d") + _digits(16),
            "trade_type": "NATIVE",
            "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功",
            "bank_type": "OTHERS",
            "attach": "",
            "success_time": _wire_time(now),
            "payer": {"openid": SANDBOX_PAYER_OPENID},
            "amount": {
                "total": total_fee,
                "payer_total": total_fee,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        }

    def _envelope(self, resource: dict[str, Any], now: datetime) -> bytes:
        nonce = secrets.token_hex(6)  # 12 characters: the AES-GCM IV
        plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()
        envelope = {
            "id": str(uuid.uuid4()),
            "create_time": _wire_time(now),
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": signing.AEAD_ALGORITHM,
                "ciphertext": signing.encrypt_resource(
                    self._creds.apiv3_key, nonce, "transaction", plaintext
                ),
                "associated_data": "transaction",
                "nonce": nonce,
            },
        }
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def _wire_time(when: datetime) -> str:
    return when.astimezone(CHINA).replace(microsecond=0).isoformat()


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))
