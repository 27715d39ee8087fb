"""The public `wechatpayv3` SDK across the key life cycle (issue 11): certificate rotation works, a
confused key fails, and its known limitation — certificate mode crashing on a `PUB_KEY_ID_` serial
(wechatpayv3#76) — is pinned here, not hidden (see sandbox/README.md §10)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from wechatpayv3 import WeChatPay, WeChatPayType

from sandbox.app import RunningSandbox, run_in_thread
from sandbox.config import SandboxConfig
from sandbox.keys.bundle import MERCHANT_PRIVATE_KEY, Credentials
from sandbox.testing import NotificationReceiver, Received
from tests.support.tls import decoy_certificate_pem


def start(credentials: Credentials, key_mode: str) -> RunningSandbox:
    return run_in_thread(SandboxConfig(credentials=credentials, key_mode=key_mode))


@pytest.fixture
def sandboxes() -> Iterator[list[RunningSandbox]]:
    running: list[RunningSandbox] = []
    yield running
    for sandbox in running:
        sandbox.stop()


def sdk(
    bundle_dir: Path, credentials: Credentials, sandbox: RunningSandbox, notify_url: str, **keys: str
) -> WeChatPay:
    wxpay = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=credentials.mchid,
        private_key=(bundle_dir / MERCHANT_PRIVATE_KEY).read_text(encoding="utf-8"),
        cert_serial_no=credentials.merchant_serial_no,
        appid=credentials.appid,
        apiv3_key=credentials.apiv3_key,
        notify_url=notify_url,
        timeout=(5, 10),
        **keys,
    )
    wxpay._core._gate_way = sandbox.base_url
    return wxpay


def cert_dir_with_decoy(tmp_path: Path) -> str:
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / "decoy.pem").write_text(decoy_certificate_pem(), encoding="utf-8")
    return str(directory)


def paid_notification(
    wxpay: WeChatPay, sandbox: RunningSandbox, receiver: NotificationReceiver, out_trade_no: str
) -> Received:
    assert wxpay.pay(description="VIP 月卡", out_trade_no=out_trade_no, amount={"total": 1})[0] == 200
    httpx.post(f"{sandbox.base_url}/sandbox/v1/orders/{out_trade_no}/pay", timeout=10).raise_for_status()
    return receiver.wait_for(lambda r: len(r) >= 1)[-1]


def test_certificate_mode_sdk_follows_a_rotation(
    bundle_dir: Path,
    credentials: Credentials,
    receiver: NotificationReceiver,
    sandboxes: list[RunningSandbox],
    tmp_path: Path,
    out_trade_no: str,
) -> None:
    sandbox = start(credentials, "certificate")
    sandboxes.append(sandbox)
    wxpay = sdk(bundle_dir, credentials, sandbox, receiver.url, cert_dir=cert_dir_with_decoy(tmp_path))
    state = httpx.post(f"{sandbox.base_url}/sandbox/v1/keys/rotation", json={"share": 1}, timeout=10).json()
    note = paid_notification(wxpay, sandbox, receiver, out_trade_no)
    assert note.headers["Wechatpay-Serial"] == state["rotation"]["successor"]
    decoded = wxpay.callback(note.headers, note.body)  # unknown serial → re-download → verifies
    assert decoded is not None
    assert decoded["resource"]["out_trade_no"] == out_trade_no


def test_sdk_given_the_wrong_key_rejects_the_notification(
    bundle_dir: Path,
    credentials: Credentials,
    receiver: NotificationReceiver,
    sandboxes: list[RunningSandbox],
    out_trade_no: str,
) -> None:
    """The confusion of wechatpay-axios-plugin#61: the certificate's key configured as the public key."""
    sandbox = start(credentials, "public_key")
    sandboxes.append(sandbox)
    certificate_key = credentials.platform_private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    wxpay = sdk(
        bundle_dir,
        credentials,
        sandbox,
        receiver.url,
        public_key=certificate_key.decode(),
        public_key_id=credentials.wechatpay_public_key_id,
    )
    # Its own API calls fail verification too (the SDK raises on a 2xx it cannot verify).
    with pytest.raises(Exception, match="failed to verify"):
        wxpay.pay(description="VIP 月卡", out_trade_no=out_trade_no, amount={"total": 1})


def test_known_limitation_certificate_mode_sdk_crashes_on_a_public_key_serial(
    bundle_dir: Path,
    credentials: Credentials,
    receiver: NotificationReceiver,
    sandboxes: list[RunningSandbox],
    tmp_path: Path,
    out_trade_no: str,
) -> None:
    """wechatpayv3 2.0.4 parses every non-public-key serial as hex: `int('0xPUB_KEY_ID_…', 16)`.
    A certificate-mode merchant that WeChat starts migrating gets exactly this (wechatpayv3#76)."""
    sandbox = start(credentials, "certificate")
    sandboxes.append(sandbox)
    wxpay = sdk(bundle_dir, credentials, sandbox, receiver.url, cert_dir=cert_dir_with_decoy(tmp_path))
    httpx.put(
        f"{sandbox.base_url}/sandbox/v1/keys/mode", json={"mode": "migrating", "share": 1}, timeout=10
    ).raise_for_status()
    note = paid_notification(wxpay, sandbox, receiver, out_trade_no)
    assert note.headers["Wechatpay-Serial"] == credentials.wechatpay_public_key_id
    with pytest.raises(ValueError, match="invalid literal for int"):
        wxpay.callback(note.headers, note.body)
