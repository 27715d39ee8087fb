"""The production guard: what `serve` refuses, and that dev and test set-ups pass it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from server.config import DEV_TOKENS, ConfigError, Settings, load_settings
from server.guard import UnsafeConfigurationError, check, enforce

ROOT = Path(__file__).resolve().parents[2]
# Two tokens as `secrets.token_urlsafe(32)` writes them (fixed, so a failure is reproducible)
BFF_TOKEN = "q3Vx8LcT2nRw0pZk7HfJ5sYb1mDg9AeUoWi4NtKl6Ch"
ADMIN_TOKEN = "Zr5Pe8WnQ1xKv3TyBj7LmFs0HcDu2GaRo9Ni4Xk6Ev_"
STRONG = f"bff:{BFF_TOKEN},admin:{ADMIN_TOKEN}"
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
        ({"api_tokens": f"bff:{BFF_TOKEN},admin:" + "a" * 40}, "ORDERPAY_API_TOKENS"),
        ({"metrics_listen": "0.0.0.0:9464"}, "ORDERPAY_METRICS_LISTEN"),
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
    for secret in ("dev-admin-token", "s" * 40, "a" * 40, "short", BFF_TOKEN):
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


WEAK_TOKENS = [
    "b" * 32,
    "abababababababababababababababab",
    "passwordpasswordpassword12345678",
    "my-secret-admin-token-for-orderpay",
    "0123456789abcdef0123456789abcdef",
    "x7Kq" + "a" * 28,
]


@pytest.mark.parametrize("weak", WEAK_TOKENS)
def test_a_long_token_without_entropy_is_refused_and_the_message_says_how_to_generate_one(weak: str) -> None:
    report = check(PRODUCTION.with_overrides(api_tokens=f"bff:{BFF_TOKEN},admin:{weak}"))
    assert any("entropy" in problem and "secrets.token_urlsafe" in problem for problem in report.problems)
    assert not any(weak in problem for problem in report.problems)


def test_generated_tokens_pass_the_entropy_rule() -> None:
    for _ in range(300):
        for token in (secrets.token_urlsafe(32), secrets.token_hex(16), secrets.token_hex(32)):
            assert (
                check(PRODUCTION.with_overrides(api_tokens=f"bff:{token},admin:{ADMIN_TOKEN}")).problems == ()
            )


@pytest.mark.parametrize(
    "exposure",
    [
        {"env": "production"},
        {"grpc_listen": "0.0.0.0:50051", "allow_plaintext_grpc": True},
        {"notify_listen": "0.0.0.0:8080"},
        {"console_listen": "10.0.0.5:8081", "console_tls_cert": "c.pem", "console_tls_key": "k.pem"},
        {"metrics_listen": "0.0.0.0:9464", "allow_public_metrics": True},
    ],
)
def test_token_rules_follow_exposure_not_the_gateway(exposure: dict[str, object]) -> None:
    """The audit's M2: a loopback egress proxy as the gateway switched every token rule off."""
    proxied = Settings(wxpay_base_url="http://127.0.0.1:15001", api_tokens=DEV_TOKENS, **exposure)  # type: ignore[arg-type]
    assert any("ORDERPAY_API_TOKENS" in problem for problem in check(proxied).problems)
    assert not any(
        "ORDERPAY_WXPAY_BASE_URL" in p for p in check(proxied).problems
    )  # a loopback proxy is fine


def test_public_metrics_need_an_explicit_opt_out_which_is_a_logged_waiver() -> None:
    public = PRODUCTION.with_overrides(metrics_listen="0.0.0.0:9464")
    assert any("ORDERPAY_METRICS_LISTEN" in problem for problem in check(public).problems)
    waived = check(public.with_overrides(allow_public_metrics=True))
    assert waived.problems == ()
    assert any("ORDERPAY_METRICS_LISTEN" in waiver for waiver in waived.waivers)


def _cli(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    for name in ("ORDERPAY_API_TOKENS", "ORDERPAY_WXPAY_BASE_URL", "ORDERPAY_ENV", "ORDERPAY_GRPC_TARGET"):
        if name not in env:
            full.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args], env=full, cwd=cwd,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_serve_in_production_behind_a_loopback_egress_proxy_refuses_dev_tokens(tmp_path: Path) -> None:
    done = _cli(
        "serve",
        ORDERPAY_ENV="production",
        ORDERPAY_WXPAY_BASE_URL="http://127.0.0.1:15001",
        ORDERPAY_NOTIFY_URL="https://pay.example.com/wxpay/notify",
        ORDERPAY_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
        ORDERPAY_CREDENTIALS_DIR=str(tmp_path / "no-keys"),
        ORDERPAY_GRPC_LISTEN="127.0.0.1:0",
        ORDERPAY_NOTIFY_LISTEN="127.0.0.1:0",
        ORDERPAY_METRICS_LISTEN="127.0.0.1:0",
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "ORDERPAY_API_TOKENS" in line
    assert "dev-admin-token" not in done.stderr + done.stdout


def test_dev_refuses_a_gateway_that_is_not_on_loopback(tmp_path: Path) -> None:
    done = _cli("dev", cwd=tmp_path, ORDERPAY_WXPAY_BASE_URL="https://api.mch.weixin.qq.com")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "ORDERPAY_WXPAY_BASE_URL" in line
    assert "loopback" in line


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (("--target", "10.0.0.5:50051"), "--target"),
        (("--target", "pay.example.com:443"), "--target"),
        (("--sandbox-url", "https://api.mch.weixin.qq.com"), "--sandbox-url"),
        (("--sandbox-url", "http://127.0.0.1:9"), "--sandbox-url"),  # loopback, but no sandbox answers
    ],
)
def test_sandbox_trigger_refuses_anything_but_a_loopback_sandbox_stack(
    flags: tuple[str, ...], named: str
) -> None:
    done = _cli("sandbox", "trigger", "transaction.success", *flags)
    assert done.returncode == 2
    assert named in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "drawn",
    [
        "W-qtt4GLTOkeNJbMCh4FnFYuXPIgFCRrren_Ql8YvAw",  # secrets.token_urlsafe(32) that holds "TOke" "n"
        "bFDUOADmiN0GcxQ0JYFcJL_uxr3LBX3HK4AL5EExCPE",  # ... that holds "ADmiN"
        "3f9a0c1e5b7d2222228e4a6c0b1d3f5e7a9c2e4b6d8f0a1c3e5b7d9f1a3c5e7b",  # a run of six in 64 hex
    ],
)
def test_a_generated_token_that_holds_a_word_or_a_short_run_by_chance_passes(drawn: str) -> None:
    report = check(PRODUCTION.with_overrides(api_tokens=f"bff:{drawn},admin:{ADMIN_TOKEN}"))
    assert report.problems == ()
