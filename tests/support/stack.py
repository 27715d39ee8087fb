"""The whole stack as real processes on loopback: sandbox + `orderpay serve` (gRPC, sidecar, jobs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.waiting import wait_until

BFF_TOKEN = "e2e-bff-token"
ADMIN_TOKEN = "e2e-admin-token"
# Start-up waits: generous, because a wait on a child ends the moment it exits (a real failure is fast);
# only a slow start on a loaded 2-core box waits this long.
STARTUP_S = 120
ROOT = Path(__file__).resolve().parents[2]


def orderpay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )


@dataclass
class Stack:
    workdir: Path
    database_url: str
    keys: Path
    sandbox_url: str = ""
    grpc_target: str = ""
    notify_url: str = ""
    metrics_url: str = ""
    server_env: dict[str, str] = field(default_factory=dict)
    sandbox: subprocess.Popen[bytes] | None = None
    server: subprocess.Popen[bytes] | None = None

    # --- processes ----------------------------------------------------------------------------
    def start_sandbox(self, *extra: str) -> None:
        port_file = self.workdir / "sandbox.port"
        self.sandbox = _spawn(
            [
                "sandbox",
                "--listen",
                "127.0.0.1:0",
                "--credentials-dir",
                str(self.keys),
                "--port-file",
                str(port_file),
                "--time-scale",
                "0.01",
                "--seed",
                "7",
                *extra,
            ],
            self.workdir / "sandbox.log",
        )
        wait_until(
            lambda: port_file.exists() and port_file.read_text().strip() != "",
            STARTUP_S,
            "sandbox port",
            child=self.sandbox,
            output=self.workdir / "sandbox.log",
        )
        self.sandbox_url = f"http://127.0.0.1:{port_file.read_text().strip()}"

    def start_server(self, **settings: str) -> None:
        """`orderpay serve` with port 0 for every listener; the ports it bound come from its ports file."""
        env = {
            **os.environ,
            "ORDERPAY_DATABASE_URL": self.database_url,
            "ORDERPAY_GRPC_LISTEN": "127.0.0.1:0",
            "ORDERPAY_NOTIFY_LISTEN": "127.0.0.1:0",
            "ORDERPAY_METRICS_LISTEN": "127.0.0.1:0",
            "ORDERPAY_CONSOLE_LISTEN": "",
            "ORDERPAY_WXPAY_BASE_URL": self.sandbox_url,
            "ORDERPAY_CREDENTIALS_DIR": str(self.keys),
            "ORDERPAY_API_TOKENS": f"bff:{BFF_TOKEN},admin:{ADMIN_TOKEN}",
            "ORDERPAY_JOB_INTERVAL_S": "0.2",
            "ORDERPAY_RECONCILE_SCHEDULE_S": "1,1,1,1,1,1,1,1",
            "ORDERPAY_REFUND_POLL_SCHEDULE_S": "1,1,1,1",
            "ORDERPAY_FULFILMENT_BACKOFF_BASE_S": "0.2",
            "ORDERPAY_FULFILMENT_BACKOFF_MAX_S": "1",
            "ORDERPAY_LOG_FORMAT": "json",
            "ORDERPAY_LOG_LEVEL": "warning",
            **{f"ORDERPAY_{k.upper()}": v for k, v in settings.items()},
        }
        self.server_env = env
        self._spawn_server("gRPC health SERVING")
        ports = self.ports
        self.grpc_target = str(ports["grpc_target"])
        self.notify_url = str(ports["notify_url"])
        self.metrics_url = f"http://127.0.0.1:{ports['metrics']}/metrics"
        # A restart binds the same ports: clients keep their target, the sandbox its notify URL.
        self.server_env = {
            **env,
            "ORDERPAY_GRPC_LISTEN": self.grpc_target,
            "ORDERPAY_NOTIFY_LISTEN": f"127.0.0.1:{ports['notify']}",
            "ORDERPAY_METRICS_LISTEN": f"127.0.0.1:{ports['metrics']}",
            "ORDERPAY_NOTIFY_URL": self.notify_url,
        }

    @property
    def ports_file(self) -> Path:
        return self.workdir / "server.ports.json"

    @property
    def ports(self) -> dict[str, Any]:
        """What the running server wrote once it served: {"grpc", "grpc_target", "notify", ...}."""
        return dict(json.loads(self.ports_file.read_text()))

    def kill_server(self) -> None:
        """kill -9: no graceful anything."""
        assert self.server is not None
        self.server.send_signal(signal.SIGKILL)
        self.server.wait(timeout=10)

    def restart_server(self) -> None:
        assert self.server is not None
        self._spawn_server("gRPC health SERVING after restart")

    def _spawn_server(self, what: str) -> None:
        self.ports_file.unlink(missing_ok=True)
        log = self.workdir / "server.log"
        self.server = _spawn(["serve", "--ports-file", str(self.ports_file)], log, env=self.server_env)
        wait_until(
            self.ports_file.exists, STARTUP_S, f"{what}: the ports file", child=self.server, output=log
        )
        self.grpc_target = str(self.ports["grpc_target"])
        wait_until(self._serving, STARTUP_S, what, child=self.server, output=log)

    def stop(self) -> None:
        for process in (self.server, self.sandbox):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()

    def _serving(self) -> bool:
        try:
            with grpc.insecure_channel(self.grpc_target) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
        except grpc.RpcError:
            return False

    # --- sandbox control ----------------------------------------------------------------------
    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.sandbox_url}/sandbox/v1/{path}", json=body, timeout=10)
        if response.is_error:
            raise AssertionError(f"sandbox {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def pay(self, out_trade_no: str) -> None:
        self.control("POST", f"orders/{out_trade_no}/pay")

    def faults(self, out_trade_no: str, **faults: Any) -> None:
        self.control("POST", f"orders/{out_trade_no}/faults", faults)

    def attempts(self) -> list[dict[str, Any]]:
        """Every notification delivery attempt the sandbox made, with the answer it got."""
        return list(self.control("GET", "notifications")["attempts"])


def _spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "clients.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )


@contextmanager
def running_stack(
    workdir: Path, database_url: str, *, accounts: bool = False, **server_settings: str
) -> Iterator[Stack]:
    """Keys, sandbox and `orderpay serve`; `accounts`: `make run`'s several accounts, not one merchant."""
    keys = workdir / "keys"
    orderpay("keys", "init", *(["--accounts"] if accounts else []), "--dir", str(keys))
    stack = Stack(workdir=workdir, database_url=database_url, keys=keys)
    try:
        stack.start_sandbox()
        stack.start_server(**server_settings)
        yield stack
    finally:
        stack.stop()
