"""Interop fixtures: the public `wechatpayv3` SDK pointed at a sandbox on 127.0.0.1:0."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from wechatpayv3 import WeChatPay, WeChatPayType

from sandbox.app import RunningSandbox, run_in_thread
from sandbox.config import SandboxConfig
from sandbox.keys import (
    MERCHANT_PRIVATE_KEY,
    WECHATPAY_PUBLIC_KEY,
    Credentials,
    init_bundle,
    load_credentials,
)
from sandbox.testing import NotificationReceiver


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("interop-keys")
    init_bundle(directory)
    return directory


@pytest.fixture(scope="session")
def credentials(bundle_dir: Path) -> Credentials:
    return load_credentials(bundle_dir)


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    rx = NotificationReceiver().start()
    yield rx
    rx.stop()


@pytest.fixture(params=["pubkey", "cert"])
def mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture
def sandbox(credentials: Credentials, mode: str) -> Iterator[RunningSandbox]:
    config = SandboxConfig(credentials=credentials, notify_sign_mode="cert" if mode == "cert" else "pubkey")
    running = run_in_thread(config)
    yield running
    running.stop()


def decoy_certificate_pem() -> str:
    """A valid self-signed cert that is NOT the sandbox's, so the SDK's constructor finds a cert in
    `cert_dir` and does not call the real gateway; its first verification then misses on the serial and
    downloads /v3/certificates from the sandbox (research §13's constructor gotcha)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "decoy")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def out_trade_no() -> str:
    return "IO" + secrets.token_hex(8)


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "wechatpay-certs"
    directory.mkdir()
    (directory / "decoy.pem").write_text(decoy_certificate_pem(), encoding="utf-8")
    return directory


@pytest.fixture
def make_wxpay(
    bundle_dir: Path,
    credentials: Credentials,
    sandbox: RunningSandbox,
    receiver: NotificationReceiver,
    mode: str,
    cert_dir: Path,
) -> Callable[[WeChatPayType], WeChatPay]:
    """The SDK as a merchant would build it, with only its gateway pointed at the sandbox."""

    def make(pay_type: WeChatPayType) -> WeChatPay:
        keys: dict[str, Any] = (
            {
                "public_key": (bundle_dir / WECHATPAY_PUBLIC_KEY).read_text(encoding="utf-8"),
                "public_key_id": credentials.wechatpay_public_key_id,
            }
            if mode == "pubkey"
            else {"cert_dir": str(cert_dir)}
        )
        wxpay = WeChatPay(
            wechatpay_type=pay_type,
            mchid=credentials.mchid,
            private_key=(bundle_dir / MERCHANT_PRIVATE_KEY).read_text(encoding="utf-8"),
            cert_serial_no=credentials.merchant_serial_no,
            appid=credentials.appid,
            apiv3_key=credentials.apiv3_key,
            notify_url=receiver.url,
            timeout=(5, 10),
            **keys,
        )
        wxpay._core._gate_way = sandbox.base_url  # no public option in 2.0.4 (research §13)
        return wxpay

    return make
