"""Real processes on loopback for benchmarks and tests: free ports, readiness polled with a deadline,
graceful stop, RSS. Output goes to log files in the run's directory so a full pipe never stalls a child.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

POLL_INTERVAL_S = 0.05
READY_TIMEOUT_S = 120.0  # generous: a wait ends when the process exits; only a slow start waits long
STOP_TIMEOUT_S = 15.0
TOKENS = "bff:bench-bff-token,admin:bench-admin-token,feed:bench-feed-token"
BFF_TOKEN = "bench-bff-token"  # noqa: S105 - a throwaway token for local processes
FEED_TOKEN = "bench-feed-token"  # noqa: S105 - B8's subscriber


class ProcessFailedError(RuntimeError):
    """A child exited or never became ready; the message ends with the tail of its log."""


def free_port() -> int:
    """A port nobody listens on right now (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli(*args: str) -> list[str]:
    """argv for `orderpay ARGS` with this interpreter (no dependence on PATH)."""
    return [sys.executable, "-m", "clients.cli", *args]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    endpoints: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def rss_mb(self) -> float:
        """Resident set size from /proc/PID/status (VmRSS, kB)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise ProcessFailedError(f"{self.name}: no VmRSS in /proc/{self.pid}/status")

    def cpu_s(self) -> float:
        """User + system CPU seconds the process has used so far."""
        return process_cpu_s(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if it outlives the timeout."""
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(STOP_TIMEOUT_S)


def spawn(name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None) -> Proc:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(  # noqa: S603 - argv built here from our own interpreter and flags
            list(argv), stdout=log, stderr=subprocess.STDOUT, env=dict(env or os.environ), cwd=log_dir
        )
    return Proc(name, popen, log_path)


def wait_until(proc: Proc, ready: Callable[[], bool], what: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll `ready` until it holds; fail fast if the process died, or at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if not proc.alive():
            raise ProcessFailedError(
                f"{proc.name} exited ({proc.popen.returncode}) before {what}:\n{proc.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise ProcessFailedError(f"{proc.name}: no {what} within {timeout_s:g} s:\n{proc.log_tail()}")
        time.sleep(POLL_INTERVAL_S)


def read_port_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def grpc_serving(target: str) -> bool:
    """grpc.health.v1 says SERVING for the whole server."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - loopback URLs we built
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """utime + stime of one process from /proc/PID/stat (all its threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def backend_cpu_s(pids: list[int]) -> dict[int, float]:
    """CPU seconds used so far by each of these processes that still runs."""
    found = {}
    for pid in pids:
        try:
            found[pid] = process_cpu_s(pid)
        except (OSError, ValueError):
            continue  # exited meanwhile
    return found


def postgres_cpu_s() -> float | None:
    """CPU seconds used so far by every local process named `postgres` (the server and its backends);
    None when none is visible (PostgreSQL on another host or in a container)."""
    total, seen = 0.0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            total += process_cpu_s(int(entry.name))
            seen = True
        except (OSError, ValueError):
            continue  # exited meanwhile
    return total if seen else None
