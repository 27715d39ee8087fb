"""Process lifecycle for `orderpay serve`: gRPC server, notify sidecar and jobs; graceful stop.

Shutdown order (SIGTERM): health NOT_SERVING -> stop accepting and finish in-flight RPCs and
notification acks within the grace period -> stop jobs -> close the pool.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from server import guard
from server.adapters.sandbox_clock import SandboxClock, clock_for
from server.app import App
from server.bootstrap import build_app, servicers_for
from server.config import Settings, load_settings
from server.console.listener import check_console_listener
from server.jobs.standard import start_jobs
from server.log_setup import configure_logging
from server.notify.sidecar import start_notify
from server.rpc.server import GrpcServer, create_grpc_server

log = structlog.get_logger("orderpay.serve")


class Stoppable(Protocol):
    def stop(self, grace: float) -> None: ...


@dataclass
class Stack:
    app: App
    grpc: GrpcServer | None = None
    parts: list[Stoppable] = field(default_factory=list)
    notify_port: int | None = None
    console_url: str | None = None  # issue 13

    def stop(self, grace: float) -> None:
        if self.grpc is not None:
            self.grpc.stop(grace)
        for part in reversed(self.parts):
            part.stop(grace)
        self.app.close()


def start_stack(
    settings: Settings, *, grpc: bool = True, notify: bool = True, jobs: bool = True, reuse_port: bool = False
) -> Stack:
    """Build the app and start the parts asked for; every part binds per Settings (port 0 = ephemeral)."""
    check_console_listener(settings)  # issue 13: refuse an unsafe console address before binding anything
    clock = clock_for(settings)  # issue 13 HOOK: ORDERPAY_CLOCK=sandbox (dev); lead: into bootstrap()
    app = build_app(settings, clock=clock)
    app.catalogue.load_file()
    stack = Stack(app)
    if isinstance(clock, SandboxClock):
        stack.parts.append(clock)  # stopped last (parts stop in reverse)
    # With --workers, the first worker alone serves the sidecar (the gRPC port is the shared one).
    if notify and os.environ.get("ORDERPAY_WORKER_INDEX", "0") == "0":
        server, stack.notify_port = start_notify(app)
        stack.parts.append(server)
    if jobs and settings.jobs_enabled:
        stack.parts.append(start_jobs(app))
    if grpc:
        stack.grpc = create_grpc_server(settings, servicers_for(app), reuse_port=reuse_port)
    # --- issue 13 HOOK (lead: move into the composition root): the operations console, first worker only.
    if os.environ.get("ORDERPAY_WORKER_INDEX", "0") == "0":
        from server.console.runner import start_console  # noqa: PLC0415 - optional part

        console = start_console(app)
        if console is not None:
            stack.parts.append(console[0])
            stack.console_url = console[1].url()
    return stack


def wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def serve(*, listen: str | None = None, parts: set[str] | None = None, workers: int = 1) -> int:
    settings = load_settings()
    if listen:
        settings = settings.with_overrides(grpc_listen=listen)
    configure_logging(settings.log_format, settings.log_level)
    for waiver in guard.enforce(settings).waivers:
        log.warning("serve.unsafe_opt_out", setting=waiver)
    if workers > 1:
        return _supervise(workers, settings)
    wanted = parts or {"grpc", "notify", "jobs"}
    stack = start_stack(
        settings,
        grpc="grpc" in wanted,
        notify="notify" in wanted,
        jobs="jobs" in wanted,
        reuse_port=os.environ.get("ORDERPAY_REUSE_PORT") == "1",
    )
    host = settings.grpc_listen.rsplit(":", 1)[0]
    log.info(
        "serve.ready",
        grpc=f"{host}:{stack.grpc.port}" if stack.grpc else None,
        notify_port=stack.notify_port,
        console=stack.console_url,
        pid=os.getpid(),
    )
    wait_for_signal()
    log.info("shutdown.begin", grace_s=settings.shutdown_grace_s)
    stack.stop(settings.shutdown_grace_s)
    log.info("shutdown.done")
    return 0


def _supervise(workers: int, settings: Settings) -> int:
    """N processes share the ports (SO_REUSEPORT); the kernel spreads connections between them."""
    if settings.grpc_listen.endswith(":0") or settings.database_url.startswith("sqlite"):
        print(
            "--workers needs a fixed port and PostgreSQL (ORDERPAY_DATABASE_URL=postgresql://...)",
            file=sys.stderr,
        )
        return 2
    env = {**os.environ, "ORDERPAY_REUSE_PORT": "1", "ORDERPAY_GRPC_LISTEN": settings.grpc_listen}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "serve"], env={**env, "ORDERPAY_WORKER_INDEX": str(i)}
        )
        for i in range(workers)
    ]
    log.info("serve.supervising", workers=[c.pid for c in children])
    wait_for_signal()
    for child in children:
        child.send_signal(signal.SIGTERM)
    codes = [child.wait(timeout=settings.shutdown_grace_s + 5) for child in children]
    return max(codes, default=0)
