"""orderpay's KeyStore against the real sandbox (in a thread): keys by serial, one rate-limited download
of /v3/certificates on an unknown serial, expiry warnings and metrics, verifications by key kind, and
`orderpay keys show` (issue 11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from structlog.testing import capture_logs

from sandbox.app import RunningSandbox, run_in_thread
from sandbox.config import SandboxConfig
from sandbox.keys.bundle import init_bundle, self_signed_cert
from sandbox.keys.bundle import load_credentials as load_sandbox_credentials
from sandbox.testing import MerchantCaller, NotificationReceiver, prepay_body
from server.domain.errors import DomainError
from server.metrics import REGISTRY
from server.wxpay.certificates import KeyStore, PlatformCertificate
from server.wxpay.client import WeChatPayClient
from server.wxpay.credentials import MerchantCredentials, load_credentials
from server.wxpay.errors import BadSignatureError, UnknownSerialError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    init_bundle(directory)
    return directory


@pytest.fixture
def make_sandbox(bundle: Path) -> Iterator[Callable[..., RunningSandbox]]:
    running: list[RunningSandbox] = []

    def make(**settings: Any) -> RunningSandbox:
        sandbox = run_in_thread(SandboxConfig(credentials=load_sandbox_credentials(bundle), **settings))
        running.append(sandbox)
        return sandbox

    yield make
    for sandbox in running:
        sandbox.stop()


@pytest.fixture
def credentials(bundle: Path) -> MerchantCredentials:
    return load_credentials(bundle)


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, operation: str, outcome: str, seconds: float) -> None:
        self.seen.append((operation, outcome))

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.seen if op == operation)


def control(sandbox: RunningSandbox, method: str, path: str, body: Any = None) -> Any:
    answer = httpx.request(method, f"{sandbox.base_url}/sandbox/v1/{path}", json=body, timeout=10)
    answer.raise_for_status()
    return answer.json()


def client_for(
    sandbox: RunningSandbox, credentials: MerchantCredentials, calls: Calls, **kw: Any
) -> WeChatPayClient:
    return WeChatPayClient(credentials, sandbox.base_url, observer=calls, **kw)


def verifications(kind: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "orderpay_wxpay_verifications_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


@pytest.mark.parametrize("sign_mode", ["pubkey", "cert"])
def test_a_rotated_certificate_is_downloaded_once_and_then_verifies(
    make_sandbox: Callable[..., RunningSandbox], credentials: MerchantCredentials, sign_mode: str
) -> None:
    sandbox = make_sandbox(key_mode="certificate")
    calls = Calls()
    with client_for(sandbox, credentials, calls, sign_mode=sign_mode) as client:
        with pytest.raises(DomainError):  # a signed 404: verified with the bundle's certificate
            client.query_refund("NOSUCHREFUND")
        assert calls.count("download_certificates") == 0
        successor = control(sandbox, "POST", "keys/rotation", {"share": 1})["rotation"]["successor"]
        before = verifications("certificate", "ok")
        with ThreadPoolExecutor(8) as pool:  # concurrent verifiers wait for the one download
            outcomes = list(pool.map(lambda _: _rejected(client), range(16)))
        assert outcomes == ["RESOURCE_NOT_EXISTS"] * 16
        assert calls.count("download_certificates") == 1
        assert successor in client.key_store.keys().serials
        assert verifications("certificate", "ok") - before >= 16


def _rejected(client: WeChatPayClient) -> str:
    try:
        client.query_refund("NOSUCHREFUND")
    except DomainError as exc:
        return str(exc.metadata.get("provider_code", exc.reason))
    return "accepted?"


def test_unknown_serial_refresh_is_rate_limited(credentials: MerchantCredentials) -> None:
    fetched: list[int] = []

    def fetch() -> list[PlatformCertificate]:
        fetched.append(1)
        return []

    store = KeyStore(credentials, fetch=fetch)
    headers = {
        "Wechatpay-Signature": "c2ln",
        "Wechatpay-Timestamp": "1700000000",
        "Wechatpay-Nonce": "n",
        "Wechatpay-Serial": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
    }
    for _ in range(3):
        with pytest.raises(UnknownSerialError):
            store.verify(headers, b"{}", now=1700000000)
    assert fetched == [1]
    with pytest.raises(UnknownSerialError):  # a public-key id is never downloaded
        store.verify({**headers, "Wechatpay-Serial": "PUB_KEY_ID_0000"}, b"{}", now=1700000000)
    assert fetched == [1]


def test_public_key_only_merchant_keeps_working_without_certificates(
    make_sandbox: Callable[..., RunningSandbox], credentials: MerchantCredentials
) -> None:
    sandbox = make_sandbox(key_mode="public_key_only")
    calls = Calls()
    with client_for(sandbox, credentials, calls) as client:
        assert _rejected(client) == "RESOURCE_NOT_EXISTS"
        with pytest.raises(DomainError):  # 404 RESOURCE_NOT_EXISTS: no platform certificates at all
            client.download_certificates()


def test_expiring_certificate_warns_and_sets_the_metric(credentials: MerchantCredentials) -> None:
    assert credentials.platform_certificate is not None
    expiry = credentials.platform_certificate.not_valid_after_utc
    with capture_logs() as logs:
        store = KeyStore(credentials, clock=(expiry - timedelta(days=3)).timestamp)
    (expiring,) = store.check_expiry()
    assert expiring.serial == credentials.platform_cert_serial_no
    assert REGISTRY.get_sample_value("orderpay_wxpay_certificates_expiring") == 1
    warning = next(line for line in logs if line["event"] == "wxpay.certificate.expires_soon")
    assert (warning["log_level"], warning["serial"], warning["days_left"]) == (
        "warning",
        expiring.serial,
        3.0,
    )
    assert "keys show" in warning["action"]
    healthy = KeyStore(credentials, clock=(expiry - timedelta(days=30)).timestamp)
    assert healthy.check_expiry() == []
    assert REGISTRY.get_sample_value("orderpay_wxpay_certificates_expiring") == 0


def test_keys_show_lists_every_key_with_its_validity(
    make_sandbox: Callable[..., RunningSandbox], bundle: Path, tmp_path: Path
) -> None:
    sandbox = make_sandbox(key_mode="certificate")
    successor = control(sandbox, "POST", "keys/rotation", {"share": 0})["rotation"]["successor"]
    env = {
        **os.environ,
        "ORDERPAY_WXPAY_BASE_URL": sandbox.base_url,
        "ORDERPAY_CREDENTIALS_DIR": str(bundle),
        "ORDERPAY_DATABASE_URL": f"sqlite:///{tmp_path}/unused.db",
    }
    run = [sys.executable, "-m", "clients.cli", "keys", "show"]
    out = subprocess.run([*run, "--json"], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    shown = json.loads(out.stdout)
    kinds = {row["serial"]: (row["kind"], row["source"]) for row in shown["keys"]}
    creds = load_credentials(bundle)
    assert kinds[creds.wechatpay_public_key_id] == ("public_key", "bundle")
    assert kinds[creds.platform_cert_serial_no] == ("certificate", "downloaded")
    assert kinds[successor] == ("certificate", "downloaded")
    assert all(row["not_after"] for row in shown["keys"] if row["kind"] == "certificate")
    table = subprocess.run(run, capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout
    assert successor in table
    assert "VALID UNTIL" in table
    control(sandbox, "PUT", "keys/mode", {"mode": "public_key_only"})
    offline = subprocess.run([*run, "--json"], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert "RESOURCE_NOT_EXISTS" in json.loads(offline.stdout)["certificates"]


@pytest.mark.parametrize("mode", ["certificate", "migrating", "public_key", "public_key_only"])
def test_orderpay_rejects_a_wrong_key_in_every_mode(
    make_sandbox: Callable[..., RunningSandbox], bundle: Path, credentials: MerchantCredentials, mode: str
) -> None:
    """The same serials, each bound to the other kind's key: nothing the sandbox signs may verify."""
    sandbox = make_sandbox(key_mode=mode, migration_ramp_s=0.0)
    if mode == "migrating":
        control(sandbox, "PUT", "keys/mode", {"mode": "migrating", "share": 0.5})
    sandbox_creds = load_sandbox_credentials(bundle)
    wrong_cert = x509.load_pem_x509_certificate(
        self_signed_cert(
            sandbox_creds.wechatpay_private_key, credentials.platform_cert_serial_no, datetime.now(UTC)
        )
    )
    swapped = replace(
        credentials,
        wechatpay_public_key=sandbox_creds.platform_private_key.public_key(),
        platform_certificate=wrong_cert,
    )
    right, wrong = KeyStore(credentials), KeyStore(swapped)
    receiver = NotificationReceiver().start()
    caller = MerchantCaller(sandbox.base_url, sandbox_creds)
    try:
        for i in range(6):
            out_trade_no = f"WK{mode[:4]}{i:04d}"
            headers = {"Wechatpay-Serial": credentials.wechatpay_public_key_id} if i % 2 else {}
            answer = caller.call(
                "POST",
                "/v3/pay/transactions/jsapi",
                prepay_body(sandbox_creds, out_trade_no, receiver.url),
                headers=headers,
            )
            control(sandbox, "POST", f"orders/{out_trade_no}/pay")
            note = receiver.wait_for(lambda r, n=i: len(r) == n + 1)[-1]
            for signed_headers, body in ((answer.headers, answer.body), (note.headers, note.body)):
                stamp = float({k.lower(): v for k, v in signed_headers.items()}["wechatpay-timestamp"])
                right.verify(signed_headers, body, now=stamp)
                with pytest.raises(BadSignatureError):
                    wrong.verify(signed_headers, body, now=stamp)
    finally:
        caller.close()
        receiver.stop()
