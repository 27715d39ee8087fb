"""Before a process binds anything: is each port free, and if not, who holds it.

`orderpay dev` checks every port it will bind before it starts anything, so a second instance fails
with one line naming the port and its holder instead of half-starting and talking to the first one's
sandbox. The holder comes from Linux's /proc (listening inode -> the process owning that socket),
else from `ss -ltnp`; where neither says, the message says only that the port is taken.
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
import socket
import subprocess
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from pathlib import Path

from server.config import ConfigError, Settings, StartupError

PROC = Path("/proc")
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp
MAX_COMMAND_CHARS = 80


class PortInUseError(StartupError):
    """A port this process must bind is already bound by someone else."""


@dataclass(frozen=True)
class Binding:
    """One address a process will listen on, and the setting that chose it (for the message)."""

    part: str  # "gRPC", "notify sidecar", "sandbox"
    setting: str  # "ORDERPAY_GRPC_LISTEN", "--sandbox-listen"
    host: str
    port: int

    @classmethod
    def parse(cls, part: str, setting: str, address: str) -> Binding:
        """`HOST:PORT` (`:PORT` means loopback; port 0 = ephemeral)."""
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"{setting}: want HOST:PORT, got {address!r}")
        return cls(part, setting, host.strip("[]") or "127.0.0.1", int(port))


def stack_bindings(settings: Settings, parts: Set[str], grpc_listen: str | None = None) -> list[Binding]:
    """The listeners a stack with these parts ("grpc", "notify") will open, from its settings."""
    bindings = []
    if "grpc" in parts:
        bindings.append(Binding.parse("gRPC", "ORDERPAY_GRPC_LISTEN", grpc_listen or settings.grpc_listen))
    if "notify" in parts:
        bindings.append(Binding.parse("notify sidecar", "ORDERPAY_NOTIFY_LISTEN", settings.notify_listen))
        if settings.metrics_listen:
            bindings.append(Binding.parse("metrics", "ORDERPAY_METRICS_LISTEN", settings.metrics_listen))
    if settings.console_listen:
        bindings.append(Binding.parse("console", "ORDERPAY_CONSOLE_LISTEN", settings.console_listen))
    return bindings


def ensure_free(bindings: Sequence[Binding]) -> None:
    """Raise one line for the first binding whose port is taken (or is claimed twice by this process)."""
    claimed: dict[int, Binding] = {}
    for binding in bindings:
        if binding.port == 0:
            continue
        if (other := claimed.get(binding.port)) is not None:
            raise ConfigError(
                f"{binding.setting} and {other.setting} both want port {binding.port}; give each its own"
            )
        claimed[binding.port] = binding
        try:
            free = can_bind(binding.host, binding.port)
        except OSError as exc:  # not ours to bind at all: privileged port, address of another host
            raise StartupError(
                f"cannot bind {binding.host}:{binding.port} ({binding.part}, {binding.setting}): "
                f"{exc.strerror or exc}"
            ) from exc
        if not free:
            holder = who_listens(binding.port)
            held_by = f" by {holder}" if holder else ""
            raise PortInUseError(
                f"port {binding.port} ({binding.part}, {binding.setting}) is already in use{held_by}: "
                f"stop it, or choose another port with {binding.setting}"
            )


def can_bind(host: str, port: int) -> bool:
    """Whether a listener could bind (host, port) now. SO_REUSEADDR as servers set it, so a port left in
    TIME_WAIT by a stopped server counts as free; Linux still refuses it while anyone listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def who_listens(port: int) -> str | None:
    """`pid 123 (orderpay dev ...)` for the process listening on `port`, when the system says."""
    return _from_proc(port) or _from_ss(port)


def _from_proc(port: int) -> str | None:
    inodes = set(_listening_inodes(port))
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid_dir in PROC.glob("[0-9]*"):
        with contextlib.suppress(OSError):  # processes come and go; others' fds may be unreadable
            for fd in (pid_dir / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if str(fd.readlink()) in targets:
                        return _describe(int(pid_dir.name))
    return None


def _listening_inodes(port: int) -> Iterable[str]:
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == TCP_LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                yield cols[9]


def _describe(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return f"pid {pid}"
    command = " ".join(raw.decode(errors="replace").replace("\0", " ").split())  # one line, always
    command = re.sub(r"^\S*/(python3?(\.\d+)?)\s+-m\s+clients\.cli", "orderpay", command)
    command = re.sub(r"^\S*/bin/orderpay", "orderpay", command)
    if len(command) > MAX_COMMAND_CHARS:
        command = command[: MAX_COMMAND_CHARS - 1] + "…"
    return f"pid {pid} ({command})" if command else f"pid {pid}"


def _from_ss(port: int) -> str | None:
    ss = shutil.which("ss")
    if ss is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 - a fixed system tool, our own arguments
            [ss, "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    return f"pid {found.group(2)} ({found.group(1)})" if found else None
