"""The production guard: what `serve` refuses, and that dev and test set-ups pass it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.config import DEV_TOKENS, ConfigError, Settings, load_settings
from server.guard import UnsafeConfigurationError, check, enforce

ROOT = Path(__file__).resolve().parents[2]
STRONG = "bff:" + "b" * 40 + ",admin:" + "a" * 40
PRODUCTION = Settings(
    wxpay_base_url="https://api.mch.weixin.qq.com",
    notify_url="https://pay.example.com/wxpay/notify",
    api_tokens=STRONG,
)


def test_a_safe_production_configuration_passes() -> None:
    assert check(PRODUCTION).problems == ()


def test_dev_and_test_defaults_pass() -> None:
    assert check(Settings()).problems == ()
    assert check(Settings(api_tokens="bff:t,admin:t2")).problems == ()  # loopback sandbox


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"api_tokens": DEV_TOKENS}, "ORDERPAY_API_TOKENS"),
        ({"api_tokens": "bff:short,admin:" + "a" * 40}, "ORDERPAY_API_TOKENS"),
        ({"api_tokens": "bff:" + "s" * 40 + ",admin:" + "s" * 40}, "ORDERPAY_API_TOKENS"),
        ({"api_tokens": ""}, "ORDERPAY_API_TOKENS"),
        ({"wxpay_base_url": "http://api.mch.weixin.qq.com"}, "ORDERPAY_WXPAY_BASE_URL"),
        ({"notify_url": "http://pay.example.com/wxpay/notify"}, "ORDERPAY_NOTIFY_URL"),
        ({"grpc_listen": "0.0.0.0:50051"}, "ORDERPAY_GRPC_LISTEN"),
    ],
)
def test_each_unsafe_setting_is_refused_by_name(changes: dict[str, str], names: str) -> None:
    with pytest.raises(UnsafeConfigurationError) as refused:
        enforce(PRODUCTION.with_overrides(**changes))
    message = str(refused.value)
    assert names in message
    assert "\n" not in message
    for secret in ("dev-admin-token", "s" * 40, "a" * 40, "short"):
        assert secret not in message


def test_plaintext_on_a_public_address_is_refused_even_with_the_sandbox() -> None:
    assert check(Settings(grpc_listen="0.0.0.0:50051")).problems != ()


def test_tls_or_an_explicit_opt_out_allows_a_public_address() -> None:
    with_tls = PRODUCTION.with_overrides(
        grpc_listen="[::]:50051", grpc_tls_cert="c.pem", grpc_tls_key="k.pem"
    )
    assert check(with_tls).problems == ()
    opted_out = PRODUCTION.with_overrides(grpc_listen="10.0.0.5:50051", allow_plaintext_grpc=True)
    report = check(opted_out)
    assert report.problems == ()
    assert len(report.waivers) == 1


def test_a_malformed_token_list_never_echoes_the_token() -> None:
    with pytest.raises(ConfigError) as bad:
        load_settings({"ORDERPAY_API_TOKENS": "supersecrettokenwithoutrole"})
    assert "supersecrettokenwithoutrole" not in str(bad.value)


def test_serve_refuses_to_start_in_one_line_with_exit_2(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ORDERPAY_WXPAY_BASE_URL": "https://api.mch.weixin.qq.com",
        "ORDERPAY_NOTIFY_URL": "https://pay.example.com/wxpay/notify",
        "ORDERPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "ORDERPAY_CREDENTIALS_DIR": str(tmp_path / "no-keys"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("ORDERPAY_API_TOKENS", None)
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ORDERPAY_API_TOKENS" in lines[0]
    assert "dev-admin-token" not in done.stderr + done.stdout
