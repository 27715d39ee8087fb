"""Start the pieces a benchmark or test needs: credentials, sandbox, `orderpay serve`, echo servers."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from clients.bench.procs import (
    TOKENS,
    Proc,
    ProcessFailedError,
    cli,
    free_port,
    grpc_serving,
    http_ok,
    read_port_file,
    spawn,
    wait_until,
)

SIDECAR_GRACE_S = 10.0  # how long after gRPC is up the sidecar may take to answer /healthz


def init_keys(directory: Path) -> Path:
    """A throwaway credentials bundle via `orderpay keys init`."""
    done = subprocess.run(  # noqa: S603 - our own CLI
        cli("keys", "init", "--dir", str(directory)), capture_output=True, check=False
    )
    if done.returncode != 0:
        raise ProcessFailedError(f"keys init failed: {done.stderr.decode(errors='replace')}")
    return directory


def start_sandbox(workdir: Path, keys_dir: Path, *, auto_pay_delay_s: float | None = None) -> Proc:
    port_file = workdir / "sandbox.port"
    argv = cli(
        "sandbox",
        "--listen",
        "127.0.0.1:0",
        "--credentials-dir",
        str(keys_dir),
        "--port-file",
        str(port_file),
    )
    if auto_pay_delay_s is not None:
        argv += ["--auto-pay-delay", str(auto_pay_delay_s)]
    proc = spawn("sandbox", argv, workdir)
    wait_until(proc, lambda: read_port_file(port_file) is not None, "port file")
    url = f"http://127.0.0.1:{read_port_file(port_file)}"
    wait_until(proc, lambda: http_ok(f"{url}/sandbox/v1/config"), "control API")
    proc.endpoints["url"] = url
    return proc


@dataclass(frozen=True)
class ServerSpec:
    database_url: str
    keys_dir: Path
    wxpay_base_url: str = "http://127.0.0.1:9"  # nothing listens: fine for order-only runs
    name: str = "server"
    settings: tuple[tuple[str, str], ...] = ()  # extra ORDERPAY_* for this server, e.g. a variant


# Where the harness puts the server: these come from the ServerSpec and the free ports, never the caller.
HARNESS_OWNED = frozenset(
    {
        "ORDERPAY_DATABASE_URL",
        "ORDERPAY_GRPC_LISTEN",
        "ORDERPAY_NOTIFY_LISTEN",
        "ORDERPAY_NOTIFY_URL",
        "ORDERPAY_WXPAY_BASE_URL",
        "ORDERPAY_CREDENTIALS_DIR",
        "ORDERPAY_API_TOKENS",
    }
)


def server_env(spec: ServerSpec, grpc_port: int, notify_port: int, metrics_port: int = 0) -> dict[str, str]:
    """The caller's environment, ORDERPAY_* tuning included (ORDERPAY_NOTIFY_WORKERS=1 make bench
    measures that variant), with the harness's addresses, keys and tokens, then the ServerSpec's settings.
    Nothing else is changed: the server runs at its defaults (log level `info`), as users run it."""
    env = {key: value for key, value in os.environ.items() if key not in HARNESS_OWNED}
    env.update(
        ORDERPAY_DATABASE_URL=spec.database_url,
        ORDERPAY_GRPC_LISTEN=f"127.0.0.1:{grpc_port}",
        ORDERPAY_NOTIFY_LISTEN=f"127.0.0.1:{notify_port}",
        ORDERPAY_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
        ORDERPAY_NOTIFY_URL=f"http://127.0.0.1:{notify_port}/wxpay/notify",
        ORDERPAY_WXPAY_BASE_URL=spec.wxpay_base_url,
        ORDERPAY_CREDENTIALS_DIR=str(spec.keys_dir),
        ORDERPAY_API_TOKENS=TOKENS,
    )
    env.update(spec.settings)
    return env


def start_server(workdir: Path, spec: ServerSpec, *, need_sidecar: bool = False) -> Proc:
    """`orderpay serve` on free ports; ready when gRPC health says SERVING (and the sidecar answers,
    if asked: when it does not come up, `endpoints` has no "notify_url" and callers skip notify work)."""
    grpc_port, notify_port, metrics_port = free_port(), free_port(), free_port()
    proc = spawn(spec.name, cli("serve"), workdir, server_env(spec, grpc_port, notify_port, metrics_port))
    target = f"127.0.0.1:{grpc_port}"
    wait_until(proc, lambda: grpc_serving(target), "gRPC health SERVING")
    proc.endpoints["target"] = target
    proc.endpoints["metrics_url"] = f"http://127.0.0.1:{metrics_port}/metrics"  # its own listener
    healthz = f"http://127.0.0.1:{notify_port}/healthz"
    try:
        wait_until(
            proc, lambda: http_ok(healthz), "sidecar /healthz", SIDECAR_GRACE_S if need_sidecar else 0.5
        )
    except ProcessFailedError:
        if not proc.alive():
            raise
    else:
        proc.endpoints["notify_url"] = f"http://127.0.0.1:{notify_port}/wxpay/notify"
    return proc


def start_echo(workdir: Path, kind: str, name: str | None = None, keys_dir: Path | None = None) -> Proc:
    """`python -m clients.bench.echo grpc|grpc-aio|http` on a free port."""
    name = name or f"echo-{kind}"
    port_file = workdir / f"{name}.port"
    argv = [sys.executable, "-m", "clients.bench.echo", kind, "--port-file", str(port_file)]
    if keys_dir is not None:
        argv += ["--keys-dir", str(keys_dir)]
    proc = spawn(name, argv, workdir)
    wait_until(proc, lambda: read_port_file(port_file) is not None, "port file")
    port = read_port_file(port_file)
    if kind.startswith("grpc"):
        proc.endpoints["target"] = f"127.0.0.1:{port}"
    else:
        proc.endpoints["url"] = f"http://127.0.0.1:{port}/echo"
        wait_until(proc, lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), "healthz")
    return proc
