"""`orderpay dev`: the whole stack on a laptop (keys, migrations, catalogue, sandbox, server, jobs)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import structlog

from server.config import DEV_TOKENS, load_settings
from server.log_setup import configure_logging
from server.runner import run_until_signal

log = structlog.get_logger("orderpay.dev")
STATE_DIR = Path(".orderpay")


def run_dev(sandbox_listen: str = "127.0.0.1:8090") -> int:
    keys = STATE_DIR / "keys"
    if not (keys / "merchant.json").exists():
        _orderpay("keys", "init", "--dir", str(keys))
    os.environ.setdefault("ORDERPAY_CREDENTIALS_DIR", str(keys))
    os.environ.setdefault("ORDERPAY_WXPAY_BASE_URL", f"http://{sandbox_listen}")
    settings = load_settings()
    configure_logging(settings.log_format, "warning")
    sandbox = subprocess.Popen(  # noqa: S603 - our own CLI
        [
            sys.executable,
            "-m",
            "clients.cli",
            "sandbox",
            "--listen",
            sandbox_listen,
            "--credentials-dir",
            str(keys),
        ]
    )
    try:
        _wait_http(f"http://{sandbox_listen}/sandbox/v1/config", sandbox)
        asyncio.run(
            run_until_signal(
                settings,
                {"grpc", "notify", "jobs"},
                on_ready=lambda _stack: _print_banner(
                    settings.grpc_listen, settings.notify_listen, sandbox_listen, settings.api_tokens
                ),
            )
        )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    return 0


def _orderpay(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "clients.cli", *args], check=True)  # noqa: S603 - our own CLI


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sandbox exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling a child's readiness, not synchronising tests
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def _print_banner(grpc: str, notify: str, sandbox: str, tokens: str) -> None:
    dev_note = " (dev tokens)" if tokens == DEV_TOKENS else ""
    print(
        f"""
orderpay dev stack is up
  gRPC           {grpc}   (OrderService, PayService, VipService, health, reflection)
  notify sidecar http://{notify}/wxpay/notify   (/healthz /readyz /metrics)
  sandbox        http://{sandbox}   (fake WeChat Pay; control API under /sandbox/v1/)
  tokens         {tokens}{dev_note}

Try it (in another terminal):
  .venv/bin/orderpay demo                 # a VIP purchase, each step printed
  .venv/bin/orderpay demo --manual        # ... and you pay on the cashier page yourself
  .venv/bin/orderpay orders list --user-id demo-user
Ctrl-C stops everything.
""",
        flush=True,
    )
