"""`orderpay dev`: the whole stack on a laptop (keys, migrations, catalogue, sandbox, server, jobs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import structlog

from server import guard
from server.config import (
    DEV_TOKENS,
    STATE_DIR,
    ConfigError,
    Settings,
    StartupError,
    describe_database,
    load_settings,
)
from server.lifecycle import Stack, run_on_loop, run_until_signal
from server.log_setup import configure_logging
from server.loopback import is_loopback
from server.port_check import Binding, ensure_free, stack_bindings
from server.ready import bound_ports, with_concrete_ports, with_port, write_ports_file
from server.rpc.server import SERVICE_NAMES
from server.wxpay.accounts import has_accounts

log = structlog.get_logger("orderpay.dev")
SANDBOX_START_S = 60.0  # a loaded 2-core laptop (or CI) can take a while to start Python
DEV_CONSOLE_LISTEN = "127.0.0.1:8081"  # the operations console, on in dev


def run_dev(sandbox_listen: str = "127.0.0.1:8090", ports_file: str | None = None) -> int:
    os.environ.setdefault("ORDERPAY_CREDENTIALS_DIR", str(STATE_DIR / "keys"))
    os.environ.setdefault("ORDERPAY_CONSOLE_LISTEN", DEV_CONSOLE_LISTEN)
    # orderpay reads the date from the sandbox it talks to, so the two never disagree about it (a demo
    # that moves the sandbox's clock moves orderpay's with it).
    if "ORDERPAY_WXPAY_BASE_URL" not in os.environ:  # our own sandbox, on loopback
        os.environ.setdefault("ORDERPAY_CLOCK", "sandbox")
    settings = load_settings()
    refuse_unsafe_dev(settings)
    keys = Path(settings.credentials_dir)  # the server's and the sandbox's: one bundle, matching keys
    sandbox_at = Binding.parse("sandbox", "--sandbox-listen", sandbox_listen)
    # Every port before anything starts: a second `orderpay dev` must not half-start against the
    # first one's sandbox (whose keys differ, so every payment would fail SIGN_ERROR).
    ensure_free([*stack_bindings(settings, {"grpc", "notify"}), sandbox_at])
    settings = with_concrete_ports(settings)
    if not has_accounts(keys):  # issue 18: two direct merchants and a provider with two sub-merchants
        _orderpay("keys", "init", "--accounts", "--dir", str(keys))
    configure_logging(settings.log_format, settings.log_level)
    STATE_DIR.mkdir(exist_ok=True)
    port_file = STATE_DIR / "sandbox.port"
    port_file.unlink(missing_ok=True)
    sandbox = subprocess.Popen(  # noqa: S603 - our own CLI
        [
            sys.executable,
            "-m",
            "clients.cli",
            "sandbox",
            "--listen",
            f"{sandbox_at.host}:{sandbox_at.port}",
            "--credentials-dir",
            str(keys),
            "--port-file",
            str(port_file),
        ]
    )
    try:
        sandbox_url = f"http://{sandbox_at.host}:{_wait_sandbox(sandbox, port_file)}"
        if "ORDERPAY_WXPAY_BASE_URL" not in os.environ:
            settings = settings.with_overrides(wxpay_base_url=sandbox_url)
        ready = settings

        def banner(stack: Stack) -> None:
            shown = ready
            if (
                stack.grpc is not None
            ):  # the port gRPC really bound (ORDERPAY_GRPC_LISTEN=...:0 = any free one)
                shown = shown.with_overrides(grpc_listen=with_port(shown.grpc_listen, stack.grpc.port))
            if ports_file:
                write_ports_file(ports_file, {**bound_ports(stack), "sandbox": sandbox_url})
            _print_banner(shown, sandbox_url, stack.console_url)

        run_on_loop(settings, run_until_signal(settings, {"grpc", "notify", "jobs"}, on_ready=banner))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        port_file.unlink(missing_ok=True)
    return 0


def refuse_unsafe_dev(settings: Settings) -> None:
    """`dev` runs the public dev tokens against its own sandbox: never against a real gateway (the
    audit's M2: `ORDERPAY_WXPAY_BASE_URL=https://...` brought a dev-token stack up on it), and under the
    production guard like `serve` (a non-loopback listener with the dev tokens is refused)."""
    if "ORDERPAY_WXPAY_BASE_URL" in os.environ:
        host = urlsplit(settings.wxpay_base_url).hostname or ""
        if not is_loopback(host):
            raise ConfigError(
                "ORDERPAY_WXPAY_BASE_URL: `orderpay dev` runs the public dev tokens against a sandbox "
                "on loopback; use `orderpay serve` (and real tokens) for any other gateway"
            )
    guard.enforce(settings)


def _wait_sandbox(process: subprocess.Popen[bytes], port_file: Path) -> int:
    """The port our own sandbox child bound (it writes the file only once bound), once it answers.

    Waiting on the file rather than on the URL is what makes the answer ours: a URL may be answered
    by another process that already held the port.
    """
    deadline = time.monotonic() + SANDBOX_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartupError(f"the sandbox exited with {process.returncode} before listening (see above)")
        if port_file.exists():
            port = int(port_file.read_text(encoding="utf-8"))
            _wait_http(f"http://127.0.0.1:{port}/sandbox/v1/config", process, deadline)
            return port
        time.sleep(0.05)  # polling a child's readiness, not synchronising tests
    raise StartupError(f"the sandbox did not start within {SANDBOX_START_S:g} s")


def _orderpay(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "clients.cli", *args], check=True)  # noqa: S603 - our own CLI


def _wait_http(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartupError(f"the sandbox exited with {process.returncode} (see above)")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling a child's readiness, not synchronising tests
    raise StartupError(f"the sandbox ({url}) did not answer within {SANDBOX_START_S:g} s")


def _print_banner(settings: Settings, sandbox_url: str, console: str | None = None) -> None:
    grpc, notify, tokens = settings.grpc_listen, settings.notify_listen, settings.api_tokens
    metrics = f"http://{settings.metrics_listen}/metrics" if settings.metrics_listen else "(not served)"
    dev_note = " (dev tokens)" if tokens == DEV_TOKENS else ""
    services = ", ".join(name.rsplit(".", 1)[1] for name in SERVICE_NAMES)  # what reflection lists
    # The hints work as printed: the client defaults are the default ports, anything else is spelled out.
    target = "" if grpc == "127.0.0.1:50051" else f" --target {grpc}"
    cashier = "" if sandbox_url == "http://127.0.0.1:8090" else f" --sandbox-url {sandbox_url}"
    console_line = (
        f"\n  console        {console}   (operations; sign in with the admin token)" if console else ""
    )
    print(
        f"""
orderpay dev stack is up
  gRPC           {grpc}   ({services}, health, reflection)
  notify sidecar http://{notify}/wxpay/notify   (/ /healthz /readyz)
  metrics        {metrics}
  sandbox        {sandbox_url}/   (fake WeChat Pay; control API /sandbox/v1/){console_line}
  tokens         {tokens}{dev_note}   (gRPC metadata `authorization: Bearer <token>`)
  database       {describe_database(settings.database_url)}

Try it (in another terminal):
  .venv/bin/orderpay demo{target}{cashier}                 # a VIP purchase, each step printed
  .venv/bin/orderpay demo{target}{cashier} --manual        # ... and you pay on the cashier page yourself
  .venv/bin/orderpay orders list{target} --user-id demo-user
  grpcurl: README.md § Calling it with grpcurl
Ctrl-C stops everything.
""",
        flush=True,
    )
