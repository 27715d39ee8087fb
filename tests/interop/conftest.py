"""Interop fixtures: the public `wechatpayv3` SDK pointed at a sandbox on 127.0.0.1:0."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from wechatpayv3 import WeChatPay, WeChatPayType

from sandbox.app import RunningSandbox, run_in_thread
from sandbox.config import SandboxConfig
from sandbox.keys.bundle import (
    MERCHANT_PRIVATE_KEY,
    WECHATPAY_PUBLIC_KEY,
    Credentials,
    init_bundle,
    load_credentials,
)
from sandbox.testing import NotificationReceiver
from tests.support.tls import decoy_certificate_pem


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


# (the SDK's mode, the sandbox merchant's key mode): every combination the SDK supports (issue 11).
# Not here, on purpose: the SDK in certificate mode against a merchant whose callbacks carry the public
# key (migrating, public_key, public_key_only) raises ValueError on `PUB_KEY_ID_…` (wechatpayv3#76);
# test_interop_key_modes.py pins that limitation.
SUPPORTED = [
    ("pubkey", "public_key"),
    ("pubkey", "public_key_only"),
    ("pubkey", "migrating"),
    ("cert", "certificate"),
]


@pytest.fixture(params=SUPPORTED, ids=[f"sdk-{sdk}-merchant-{merchant}" for sdk, merchant in SUPPORTED])
def combination(request: pytest.FixtureRequest) -> tuple[str, str]:
    combination: tuple[str, str] = request.param
    return combination


@pytest.fixture
def mode(combination: tuple[str, str]) -> str:
    """The SDK's mode: `pubkey` (public_key + public_key_id) or `cert` (platform certificates)."""
    return combination[0]


@pytest.fixture
def key_mode(combination: tuple[str, str]) -> str:
    """The sandbox merchant's key mode (sandbox/key_modes.py); `migrating` is held at 50 %."""
    return combination[1]


@pytest.fixture
def sandbox(credentials: Credentials, key_mode: str) -> Iterator[RunningSandbox]:
    running = run_in_thread(SandboxConfig(credentials=credentials, key_mode=key_mode))
    if key_mode == "migrating":
        body = {"mode": "migrating", "share": 0.5}
        httpx.put(f"{running.base_url}/sandbox/v1/keys/mode", json=body, timeout=10).raise_for_status()
    yield running
    running.stop()


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
