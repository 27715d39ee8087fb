"""The merchant credentials bundle, loaded once into a frozen object that never prints secrets.

Bundle layout: `merchant.json` (`mchid`, `appid`, `merchant_serial_no`, `apiv3_key`,
`wechatpay_public_key_id`, `platform_cert_serial_no`), `merchant_private_key.pem`, and at least one of
`wechatpay_public_key.pem` (public-key mode) / `platform_cert.pem` (certificate mode).
`wechatpay_private_key.pem` belongs to the sandbox and is deliberately never opened here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from server.wxpay.errors import CredentialsError
from server.wxpay.signing import VerifierKeys

MERCHANT_FILE = "merchant.json"
MERCHANT_PRIVATE_KEY_FILE = "merchant_private_key.pem"
WECHATPAY_PUBLIC_KEY_FILE = "wechatpay_public_key.pem"
PLATFORM_CERT_FILE = "platform_cert.pem"
_T = TypeVar("_T")
_REQUIRED_FIELDS = ("mchid", "appid", "merchant_serial_no", "apiv3_key")


@dataclass(frozen=True, repr=False)
class MerchantCredentials:
    mchid: str
    appid: str
    merchant_serial_no: str
    apiv3_key: str
    wechatpay_public_key_id: str
    platform_cert_serial_no: str
    merchant_private_key: rsa.RSAPrivateKey
    wechatpay_public_key: rsa.RSAPublicKey | None
    platform_certificate: x509.Certificate | None

    def __repr__(self) -> str:
        # Secrets (the APIv3 key, the private key) must never reach a log line through repr().
        return (
            f"MerchantCredentials(mchid={self.mchid!r}, appid={self.appid!r}, "
            f"merchant_serial_no={self.merchant_serial_no!r}, "
            f"wechatpay_public_key_id={self.wechatpay_public_key_id!r}, "
            f"platform_cert_serial_no={self.platform_cert_serial_no!r}, apiv3_key=<hidden>, "
            f"merchant_private_key=<hidden>)"
        )

    def verifier_keys(self) -> VerifierKeys:
        """Every WeChat Pay key this bundle verifies with, by the serial in `Wechatpay-Serial`."""
        keys: dict[str, rsa.RSAPublicKey] = {}
        if self.wechatpay_public_key is not None and self.wechatpay_public_key_id:
            keys[self.wechatpay_public_key_id] = self.wechatpay_public_key
        if self.platform_certificate is not None:
            keys[self.platform_cert_serial_no] = _rsa_public_key(self.platform_certificate)
        return VerifierKeys(keys)


def certificate_serial(cert: x509.Certificate) -> str:
    """The serial as WeChat Pay writes it: uppercase hex, no separators."""
    return f"{cert.serial_number:X}"


def load_credentials(directory: Path | str) -> MerchantCredentials:
    root = Path(directory)
    if not root.is_dir():
        raise CredentialsError(f"credentials directory {root} does not exist")
    fields = _read_merchant_json(root / MERCHANT_FILE)
    public_key = _optional(root / WECHATPAY_PUBLIC_KEY_FILE, _load_public_key)
    certificate = _optional(root / PLATFORM_CERT_FILE, _load_certificate)
    if public_key is None and certificate is None:
        raise CredentialsError(f"{root}: need {WECHATPAY_PUBLIC_KEY_FILE} or {PLATFORM_CERT_FILE}")
    key_id = fields.get("wechatpay_public_key_id", "")
    if public_key is not None and not key_id:
        raise CredentialsError(f"{MERCHANT_FILE}: wechatpay_public_key_id is required with a public key")
    return MerchantCredentials(
        mchid=fields["mchid"],
        appid=fields["appid"],
        merchant_serial_no=fields["merchant_serial_no"],
        apiv3_key=fields["apiv3_key"],
        wechatpay_public_key_id=key_id,
        platform_cert_serial_no=_platform_serial(fields, certificate),
        merchant_private_key=_load_private_key(root / MERCHANT_PRIVATE_KEY_FILE),
        wechatpay_public_key=public_key,
        platform_certificate=certificate,
    )


def _read_merchant_json(path: Path) -> dict[str, str]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CredentialsError(f"missing {path}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"{path}: not valid JSON ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise CredentialsError(f"{path}: expected a JSON object")
    fields = {str(k): v for k, v in raw.items() if isinstance(v, str)}
    missing = [name for name in _REQUIRED_FIELDS if not fields.get(name)]
    if missing:
        raise CredentialsError(f"{path}: missing or non-string fields {missing}")
    key = fields["apiv3_key"]
    if len(key) != 32 or not key.isascii():
        # Say what is wrong without echoing the key.
        raise CredentialsError(f"{path}: apiv3_key must be exactly 32 ASCII characters")
    return fields


def _platform_serial(fields: dict[str, str], certificate: x509.Certificate | None) -> str:
    declared = fields.get("platform_cert_serial_no", "").upper()
    if certificate is None:
        return declared
    actual = certificate_serial(certificate)
    if declared and declared != actual:
        raise CredentialsError(
            f"{MERCHANT_FILE}: platform_cert_serial_no {declared} "
            f"does not match {PLATFORM_CERT_FILE} ({actual})"
        )
    return actual


def _optional(path: Path, loader: Callable[[Path], _T]) -> _T | None:
    return loader(path) if path.exists() else None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CredentialsError(f"missing {path}") from None


def _load_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = load_pem_private_key(_read_bytes(path), password=None)
    except (ValueError, TypeError):
        raise CredentialsError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise CredentialsError(f"{path}: expected an RSA private key of at least 2048 bits")
    return key


def _load_public_key(path: Path) -> rsa.RSAPublicKey:
    try:
        key = load_pem_public_key(_read_bytes(path))
    except (ValueError, TypeError):
        raise CredentialsError(f"{path}: not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise CredentialsError(f"{path}: expected an RSA public key")
    return key


def _load_certificate(path: Path) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(_read_bytes(path))
    except ValueError:
        raise CredentialsError(f"{path}: not a PEM X.509 certificate") from None
    _rsa_public_key(cert)
    return cert


def _rsa_public_key(cert: x509.Certificate) -> rsa.RSAPublicKey:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CredentialsError("platform certificate does not hold an RSA key")
    return key
