"""Test-side WeChat Pay: a credentials bundle and signed, encrypted notifications (cryptography only)."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import load_pem_private_key

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
KEYS = VECTORS / "keys"
FACTS: dict[str, Any] = json.loads((VECTORS / "wechatpay_v3.json").read_text(encoding="utf-8"))


def make_bundle(directory: Path) -> Path:
    """A merchant credentials bundle in public-key mode, from the throwaway vector keys."""
    directory.mkdir(parents=True, exist_ok=True)
    fields = ("mchid", "appid", "merchant_serial_no", "apiv3_key", "wechatpay_public_key_id")
    (directory / "merchant.json").write_text(json.dumps({k: FACTS[k] for k in fields}), encoding="utf-8")
    shutil.copy(KEYS / "merchant_private_key.pem", directory / "merchant_private_key.pem")
    shutil.copy(KEYS / "wechatpay_public_key.pem", directory / "wechatpay_public_key.pem")
    return directory


def _wechatpay_key() -> rsa.RSAPrivateKey:
    key = load_pem_private_key((KEYS / "wechatpay_private_key.pem").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes


class WeChatNotifier:
    """Builds notifications as WeChat Pay sends them: AES-256-GCM resource, RSA-SHA256 signed body."""

    def __init__(self) -> None:
        self.key = _wechatpay_key()
        self.serial: str = FACTS["wechatpay_public_key_id"]
        self.apiv3_key: bytes = FACTS["apiv3_key"].encode()

    def encrypt(self, resource: dict[str, Any], *, associated_data: str = "transaction") -> dict[str, str]:
        nonce = secrets.token_hex(6)
        plaintext = json.dumps(resource).encode()
        sealed = AESGCM(self.apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
        return {
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(sealed).decode(),
            "associated_data": associated_data,
            "original_type": "transaction",
            "nonce": nonce,
        }

    def envelope(
        self, resource: dict[str, Any], *, event_type: str = "TRANSACTION.SUCCESS", notification_id: str = ""
    ) -> bytes:
        body = {
            "id": notification_id or str(uuid.uuid4()),
            "create_time": "2025-01-01T12:00:00+08:00",
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功",
            "resource": self.encrypt(resource),
        }
        return json.dumps(body, ensure_ascii=False).encode()

    def sign(self, body: bytes, *, timestamp: int | None = None, serial: str = "") -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(16).upper()
        message = f"{ts}\n{nonce}\n".encode() + body + b"\n"
        signature = self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": base64.b64encode(signature).decode(),
            "Wechatpay-Serial": serial or self.serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }

    def deliver(self, resource: dict[str, Any], **envelope: Any) -> Delivery:
        body = self.envelope(resource, **envelope)
        return Delivery(self.sign(body), body)


def paid_resource(out_trade_no: str, total: int, *, trade_state: str = "SUCCESS") -> dict[str, Any]:
    return {
        "mchid": FACTS["mchid"],
        "appid": FACTS["appid"],
        "out_trade_no": out_trade_no,
        "transaction_id": "4200" + secrets.token_hex(12)[:24],
        "trade_type": "NATIVE",
        "trade_state": trade_state,
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": "2025-01-01T12:00:00+08:00",
        "payer": {"openid": "o" + secrets.token_hex(8)},
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
    }


def refund_resource(out_trade_no: str, out_refund_no: str, amount: int) -> dict[str, Any]:
    return {
        "mchid": FACTS["mchid"],
        "out_trade_no": out_trade_no,
        "transaction_id": "4200" + secrets.token_hex(12)[:24],
        "out_refund_no": out_refund_no,
        "refund_id": "5030" + secrets.token_hex(12)[:24],
        "refund_status": "SUCCESS",
        "success_time": "2025-01-01T12:30:00+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {"total": amount, "refund": amount, "payer_total": amount, "payer_refund": amount},
    }
