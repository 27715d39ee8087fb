"""`orderpay keys init` and `orderpay sandbox` as real processes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from sandbox.keys.bundle import load_credentials
from sandbox.testing import MerchantCaller, wait_until

ORDERPAY = [sys.executable, "-m", "clients.cli"]
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ORDERPAY, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_keys_init_writes_the_bundle(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    result = run("keys", "init", "--dir", str(keys))
    assert result.returncode == 0, result.stderr
    info = json.loads((keys / "merchant.json").read_text())
    assert set(info) == {
        "mchid",
        "appid",
        "merchant_serial_no",
        "apiv3_key",
        "wechatpay_public_key_id",
        "platform_cert_serial_no",
    }
    assert info["mchid"].isdigit()
    assert info["appid"].startswith("wx")
    assert len(info["appid"]) == 18
    assert len(info["apiv3_key"]) == 32
    assert info["apiv3_key"].isascii()
    assert info["wechatpay_public_key_id"].startswith("PUB_KEY_ID_")
    assert len(info["wechatpay_public_key_id"]) == 43
    for serial in (info["merchant_serial_no"], info["platform_cert_serial_no"]):
        assert len(serial) == 40
        assert serial == serial.upper()
        int(serial, 16)
    assert b"BEGIN PRIVATE KEY" in (keys / "merchant_private_key.pem").read_bytes()  # PKCS#8
    for private in ("merchant_private_key.pem", "wechatpay_private_key.pem", "merchant.json"):
        assert stat.S_IMODE((keys / private).stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((keys / "platform_cert.pem").read_bytes())
    assert f"{cert.serial_number:040X}" == info["platform_cert_serial_no"]
    assert cert.not_valid_after_utc - datetime.now(UTC) > timedelta(days=5 * 365 - 2)
    creds = load_credentials(keys)
    assert cert.public_key() == creds.platform_private_key.public_key()
    assert cert.public_key() != creds.wechatpay_public_key  # the certificate has its own key pair
    assert stat.S_IMODE((keys / "platform_private_key.pem").stat().st_mode) == 0o600


def test_keys_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert run("keys", "init", "--dir", str(tmp_path)).returncode == 0
    before = (tmp_path / "merchant.json").read_text()
    refused = run("keys", "init", "--dir", str(tmp_path))
    assert refused.returncode == 1
    assert "--force" in refused.stderr
    assert (tmp_path / "merchant.json").read_text() == before
    assert run("keys", "init", "--dir", str(tmp_path), "--force").returncode == 0
    assert (tmp_path / "merchant.json").read_text() != before


def test_keys_init_force_replaces_a_planted_symlink_and_never_writes_through_it(tmp_path: Path) -> None:
    keys, victim = tmp_path / "keys", tmp_path / "victim.txt"
    assert run("keys", "init", "--dir", str(keys)).returncode == 0
    victim.write_text("not a key")
    (keys / "merchant_private_key.pem").unlink()
    (keys / "merchant_private_key.pem").symlink_to(victim)
    assert run("keys", "init", "--dir", str(keys), "--force").returncode == 0
    assert victim.read_text() == "not a key"
    written = keys / "merchant_private_key.pem"
    assert not written.is_symlink()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in written.read_text()
    assert not [p for p in keys.iterdir() if p.name.startswith(".")]  # no staging files left


def test_a_new_bundle_directory_is_owner_only(tmp_path: Path) -> None:
    assert run("keys", "init", "--dir", str(tmp_path / "fresh")).returncode == 0
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700


def test_sandbox_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    keys, port_file = tmp_path / "keys", tmp_path / "port"
    assert run("keys", "init", "--dir", str(keys)).returncode == 0
    process = subprocess.Popen(
        [
            *ORDERPAY,
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--credentials-dir",
            str(keys),
            "--port-file",
            str(port_file),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        port = int(wait_until(lambda: port_file.exists() and port_file.read_text().strip(), timeout=30))
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"sandbox listening on http://127.0.0.1:{port}"
        caller = MerchantCaller(f"http://127.0.0.1:{port}", load_credentials(keys))
        try:
            assert caller.call("GET", "/v3/certificates").status == 200
        finally:
            caller.close()
        assert httpx.get(f"http://127.0.0.1:{port}/sandbox/v1/state").json()["trades"] == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize(
    ("flags", "mode", "certificates"),
    [
        (("--key-mode", "migrating", "--migration-ramp", "3600"), "migrating", 200),
        (("--key-mode", "public_key_only"), "public_key_only", 404),
    ],
)
def test_sandbox_key_mode_flags(tmp_path: Path, flags: tuple[str, ...], mode: str, certificates: int) -> None:
    keys, port_file = tmp_path / "keys", tmp_path / "port"
    assert run("keys", "init", "--dir", str(keys)).returncode == 0
    command = [*ORDERPAY, "sandbox", "--listen", "127.0.0.1:0", "--credentials-dir", str(keys)]
    process = subprocess.Popen(
        [*command, "--port-file", str(port_file), *flags],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = int(wait_until(lambda: port_file.exists() and port_file.read_text().strip(), timeout=30))
        state = httpx.get(f"http://127.0.0.1:{port}/sandbox/v1/keys").json()
        assert state["mode"] == mode
        if mode == "migrating":
            assert state["migration"]["ramp_s"] == 3600
            assert 0 <= state["migration"]["public_key_share"] < 0.01
        caller = MerchantCaller(f"http://127.0.0.1:{port}", load_credentials(keys))
        try:
            assert caller.call("GET", "/v3/certificates").status == certificates
        finally:
            caller.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
