"""The dev credentials bundle: throwaway keys both the merchant side and the sandbox read.

`init_bundle` writes it; `load_credentials` reads it back. Nothing here is ever a real credential.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

MERCHANT_JSON = "merchant.json"
MERCHANT_PRIVATE_KEY = "merchant_private_key.pem"
MERCHANT_PUBLIC_KEY = "merchant_public_key.pem"
WECHATPAY_PUBLIC_KEY = "wechatpay_public_key.pem"
WECHATPAY_PRIVATE_KEY = "wechatpay_private_key.pem"
PLATFORM_CERT = "platform_cert.pem"
# The platform certificate's own key pair (sandbox only): a different key from the public key's, as at
# WeChat, so a client that verifies with the wrong one fails (issue 11).
PLATFORM_PRIVATE_KEY = "platform_private_key.pem"
BUNDLE_FILES = (
    MERCHANT_JSON,
    MERCHANT_PRIVATE_KEY,
    MERCHANT_PUBLIC_KEY,
    WECHATPAY_PUBLIC_KEY,
    WECHATPAY_PRIVATE_KEY,
    PLATFORM_CERT,
    PLATFORM_PRIVATE_KEY,
)
# merchant.json holds the APIv3 key, so it is as private as the private keys.
_PRIVATE_FILES = (MERCHANT_PRIVATE_KEY, WECHATPAY_PRIVATE_KEY, PLATFORM_PRIVATE_KEY, MERCHANT_JSON)
PLATFORM_CERT_VALIDITY = timedelta(days=5 * 365)


class BundleExistsError(Exception):
    """The target directory already holds a credentials bundle and `force` was not given."""


@dataclass(frozen=True)
class Credentials:
    """Everything in a bundle, parsed. The sandbox signs with the wechatpay private key."""

    mchid: str
    appid: str
    merchant_serial_no: str
    apiv3_key: str
    wechatpay_public_key_id: str
    platform_cert_serial_no: str
    merchant_private_key: rsa.RSAPrivateKey
    merchant_public_key: rsa.RSAPublicKey
    wechatpay_private_key: rsa.RSAPrivateKey
    wechatpay_public_key: rsa.RSAPublicKey
    platform_cert_pem: str
    # Signs as the platform certificate. Bundles written before issue 11 have no such file: then it is
    # the wechatpay key, and a wrong-key verifier cannot be caught (`keys init --force` fixes that).
    platform_private_key: rsa.RSAPrivateKey


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_pem(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def serial_hex() -> str:
    # 40 upper-hex digits whose leading nibble is 1-7: X.509 caps serials at 159 bits.
    return secrets.choice("1234567") + secrets.token_hex(20).upper()[1:]


def self_signed_cert(
    key: rsa.RSAPrivateKey, serial: str, now: datetime, validity: timedelta = PLATFORM_CERT_VALIDITY
) -> bytes:
    """A platform certificate: self-signed X.509 over `key`, valid from 5 minutes ago for `validity`."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "orderpay sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA (sandbox)"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int(serial, 16))
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + validity)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _merchant_json() -> dict[str, str]:
    alphabet = string.ascii_letters + string.digits
    return {
        "mchid": "19" + "".join(secrets.choice(string.digits) for _ in range(8)),
        "appid": "wx" + secrets.token_hex(8),
        "merchant_serial_no": serial_hex(),
        "apiv3_key": "".join(secrets.choice(alphabet) for _ in range(32)),
        "wechatpay_public_key_id": "PUB_KEY_ID_" + "".join(secrets.choice(string.digits) for _ in range(32)),
        "platform_cert_serial_no": serial_hex(),
    }


def init_bundle(directory: Path, *, force: bool = False, now: datetime | None = None) -> dict[str, str]:
    """Write a fresh bundle into `directory`; return the contents of `merchant.json`."""
    if not force and any((directory / name).exists() for name in BUNDLE_FILES):
        raise BundleExistsError(f"{directory} already holds a credentials bundle (use --force to replace it)")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    merchant_key, wechatpay_key, platform_key = new_key(), new_key(), new_key()
    info = _merchant_json()
    when = now or datetime.now(UTC)
    contents = {
        MERCHANT_JSON: (json.dumps(info, indent=2) + "\n").encode(),
        MERCHANT_PRIVATE_KEY: _private_pem(merchant_key),
        MERCHANT_PUBLIC_KEY: _public_pem(merchant_key.public_key()),
        WECHATPAY_PRIVATE_KEY: _private_pem(wechatpay_key),
        WECHATPAY_PUBLIC_KEY: _public_pem(wechatpay_key.public_key()),
        PLATFORM_CERT: self_signed_cert(platform_key, info["platform_cert_serial_no"], when),
        PLATFORM_PRIVATE_KEY: _private_pem(platform_key),
    }
    for name, data in contents.items():
        _write(directory / name, data, private=name in _PRIVATE_FILES)
    return info


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write a new file beside `path` and rename it over: a symlink planted at `path` is replaced,
    never followed, and the file has its mode before it holds a byte."""
    mode = 0o600 if private else 0o644
    staging = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(staging, mode)  # the umask may have narrowed O_CREAT's mode
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def _load_private(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{path} is not an RSA private key")
    return key


def _load_public(path: Path) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError(f"{path} is not an RSA public key")
    return key


def load_credentials(directory: Path) -> Credentials:
    """Read a bundle written by `init_bundle` (or by hand, with the same file names)."""
    info = json.loads((directory / MERCHANT_JSON).read_text(encoding="utf-8"))
    wechatpay_private_key = _load_private(directory / WECHATPAY_PRIVATE_KEY)
    platform_key_path = directory / PLATFORM_PRIVATE_KEY
    platform_private_key = (
        _load_private(platform_key_path) if platform_key_path.exists() else wechatpay_private_key
    )
    return Credentials(
        mchid=info["mchid"],
        appid=info["appid"],
        merchant_serial_no=info["merchant_serial_no"],
        apiv3_key=info["apiv3_key"],
        wechatpay_public_key_id=info["wechatpay_public_key_id"],
        platform_cert_serial_no=info["platform_cert_serial_no"],
        merchant_private_key=_load_private(directory / MERCHANT_PRIVATE_KEY),
        merchant_public_key=_load_public(directory / MERCHANT_PUBLIC_KEY),
        wechatpay_private_key=wechatpay_private_key,
        wechatpay_public_key=_load_public(directory / WECHATPAY_PUBLIC_KEY),
        platform_cert_pem=(directory / PLATFORM_CERT).read_text(encoding="utf-8"),
        platform_private_key=platform_private_key,
    )
