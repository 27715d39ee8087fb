"""What a started process tells the one that started it: the ports it really bound.

Port 0 means "any free port" for every listener. The notify sidecar's port is made concrete before
anything starts (it is part of the notify URL WeChat Pay posts to, so it must be known first); the
others are read back once bound. `--ports-file PATH` writes them all as one JSON object, atomically,
once the process serves: a test harness or a supervisor reads it instead of guessing or racing.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from server.config import Settings

if TYPE_CHECKING:
    from server.lifecycle import Stack


def with_concrete_ports(settings: Settings) -> Settings:
    """Port 0 for the sidecar and the metrics listener, made concrete before they start. The notify
    URL follows the sidecar's address unless it was set on purpose."""
    notify = with_port(settings.notify_listen, _free_port_if_zero(settings.notify_listen))
    metrics = settings.metrics_listen
    if metrics:
        metrics = with_port(metrics, _free_port_if_zero(metrics))
    changes: dict[str, str] = {"notify_listen": notify, "metrics_listen": metrics}
    if settings.notify_url == Settings().notify_url:  # the default, not chosen: follow the sidecar
        changes["notify_url"] = f"http://{notify}/wxpay/notify"
    return settings.with_overrides(**changes)


def with_port(address: str, port: int) -> str:
    return f"{address.rpartition(':')[0]}:{port}"


def _free_port_if_zero(address: str) -> int:
    host, _, port = address.rpartition(":")
    if int(port) != 0:
        return int(port)
    with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as probe:
        probe.bind((host.strip("[]") or "127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bound_ports(stack: Stack) -> dict[str, object]:
    settings = stack.app.settings
    return {
        "pid": os.getpid(),
        "grpc": stack.grpc.port if stack.grpc is not None else None,
        "grpc_target": (with_port(settings.grpc_listen, stack.grpc.port) if stack.grpc is not None else None),
        "notify": stack.notify_port,
        "notify_url": settings.notify_url,
        "metrics": stack.metrics_port,
        "console": stack.console_url,
    }


def write_ports_file(path: str, ports: dict[str, object]) -> None:
    """Atomically: a reader sees no file or the whole object, never half of it."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(ports) + "\n", encoding="utf-8")
    partial.replace(target)
