"""Process lifecycle for `orderpay serve`: one event loop runs gRPC, the notify sidecar, the metrics
listener and the long-poll waiters; the jobs keep their own threads (they sleep between runs and call
WeChat Pay), and so does the operations console.

Shutdown order (SIGTERM): health NOT_SERVING -> wake every waiter with its current order -> stop
accepting and finish in-flight RPCs and notification acks within the grace period -> stop the console
and the jobs -> close the thread pools, the listener and the database pool.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import peewee as pw
import structlog
import uvloop
from aiohttp import web

from server import guard
from server.adapters.db import ready
from server.adapters.decisions import FulfilmentDecisions
from server.adapters.sandbox_clock import SandboxClock, clock_for
from server.app import App
from server.bootstrap import build_app
from server.config import Settings, load_settings
from server.console.listener import check_console_listener
from server.console.start import start_console
from server.jobs.scheduler import JobRunner
from server.jobs.standard import start_jobs
from server.log_setup import configure_logging
from server.metrics import IN_FLIGHT, WAITERS
from server.notify.sidecar import serve_metrics, serve_notify
from server.ready import bound_ports, with_concrete_ports, write_ports_file
from server.rpc.server import GrpcServer, servicers_for, start_grpc_server
from server.serving.admission import Admission
from server.serving.feed_signal import FeedSignal
from server.serving.health import PrimaryWatch
from server.serving.http import AppThread
from server.serving.offload import Inline, Offload, Runner
from server.serving.signals import PostgresListener, listener_args
from server.serving.waiters import Waiters

log = structlog.get_logger("orderpay.serve")


@dataclass
class Stack:
    """Everything one process serves, on its event loop."""

    app: App
    waiters: Waiters
    admission: Admission
    db: Runner  # database work: inline on the loop (SQLite) or a few threads (PostgreSQL)
    provider: Offload  # calls to WeChat Pay
    decisions: FulfilmentDecisions  # "fulfilment decided": the waiters subscribe
    feed: FeedSignal  # "the event feed grew": the Watch streams park on it
    listener: PostgresListener | None = None
    grpc: GrpcServer | None = None
    notify: web.AppRunner | None = None
    notify_port: int | None = None
    metrics: web.AppRunner | None = None
    metrics_port: int | None = None
    jobs: JobRunner | None = None
    primary_watch: PrimaryWatch | None = None
    console: AppThread | None = None
    console_url: str | None = None
    threads: list[SandboxClock] = field(default_factory=list)  # stopped last

    async def stop(self, grace: float) -> None:
        if self.primary_watch is not None:
            await self.primary_watch.stop()
        if self.grpc is not None:
            await self.grpc.not_serving()
        self.waiters.close()  # parked long-polls answer now, with the order as it is
        self.feed.close()  # Watch streams end; subscribers resume from their acknowledgement
        draining = []
        if self.grpc is not None:
            draining.append(self.grpc.stop(grace))
        if self.notify is not None:
            draining.append(self.notify.cleanup())
        await asyncio.gather(*draining)
        if self.metrics is not None:
            await self.metrics.cleanup()
        if self.console is not None:
            await asyncio.to_thread(self.console.stop, grace)
        if self.jobs is not None:
            await asyncio.to_thread(self.jobs.stop, grace)
        if self.listener is not None:
            self.listener.close()
        await asyncio.to_thread(self.provider.shutdown)
        await asyncio.to_thread(self.db.shutdown)
        for thread in self.threads:
            await asyncio.to_thread(thread.stop, grace)


def _first_worker(settings: Settings) -> bool:
    """With --workers, the first worker alone serves the sidecar and the console (gRPC is shared)."""
    return settings.worker_index == 0


async def start_parts(
    app: App, *, grpc: bool = True, notify: bool = True, jobs: bool = True, reuse_port: bool = False
) -> Stack:
    """Start the parts asked for on the running loop; every part binds per Settings (port 0 = ephemeral)."""
    settings = app.settings
    waiters = Waiters(asyncio.get_running_loop())
    decisions = app.payments.decisions if app.payments is not None else FulfilmentDecisions(app.db)
    decisions.subscribe(waiters.wake)  # the FulfilmentDecided reaction (server.service.handlers)
    postgres = isinstance(app.db, pw.PostgresqlDatabase)
    db: Runner = Offload(settings.db_threads, "db") if postgres and settings.db_threads else Inline()
    provider = Offload(settings.offload_workers, "provider")
    feed = FeedSignal(asyncio.get_running_loop())
    app.feed.commits.subscribe(feed.wake)  # this process's commits; the listener brings the others'
    stack = Stack(app, waiters, Admission(settings.max_inflight), db, provider, decisions, feed)
    WAITERS.set_function(lambda: waiters.waiting)
    IN_FLIGHT.set_function(lambda: stack.admission.in_flight)
    if postgres:
        args = listener_args(app.db, settings.database_session_url)  # type: ignore[arg-type]  # checked above
        stack.listener = PostgresListener(args, waiters, feed=feed.wake)
        await stack.listener.start()
    if notify and app.payments is not None and _first_worker(settings):
        stack.notify, stack.notify_port = await serve_notify(app, db.executor)
        if settings.metrics_listen:
            stack.metrics, stack.metrics_port = await serve_metrics(settings)
    if jobs and settings.jobs_enabled and app.payments is not None:
        stack.jobs = start_jobs(app)
    if grpc:
        servicers = servicers_for(app, stack.waiters, stack.db, stack.provider, stack.feed)
        stack.grpc = await start_grpc_server(settings, servicers, stack.admission, reuse_port=reuse_port)
        stack.primary_watch = PrimaryWatch(
            functools.partial(ready, app.db), stack.grpc.set_serving, settings.db_health_interval_s
        )
        stack.primary_watch.start()
    if _first_worker(settings):
        console = await asyncio.to_thread(start_console, app)
        if console is not None:
            stack.console, stack.console_url = console[0], console[1].url()
    return stack


def app_for(settings: Settings) -> App:
    """The App `orderpay serve` runs: an unsafe console address is refused before anything binds, and
    ORDERPAY_CLOCK=sandbox (dev only) follows the sandbox's clock."""
    check_console_listener(settings)
    app = build_app(settings, clock=clock_for(settings))
    app.catalogue.load_file()
    return app


async def run_until_signal(
    settings: Settings,
    parts: set[str],
    *,
    reuse_port: bool = False,
    on_ready: Callable[[Stack], None] | None = None,
    ports_file: str | None = None,
) -> None:
    app = app_for(settings)
    stack = await start_parts(
        app, grpc="grpc" in parts, notify="notify" in parts, jobs="jobs" in parts, reuse_port=reuse_port
    )
    if isinstance(app.clock, SandboxClock):
        stack.threads.append(app.clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host = settings.grpc_listen.rsplit(":", 1)[0]
    log.info(
        "serve.ready",
        grpc=f"{host}:{stack.grpc.port}" if stack.grpc else None,
        notify_port=stack.notify_port,
        metrics_port=stack.metrics_port,
        console=stack.console_url,
        pid=os.getpid(),
    )
    if ports_file:
        write_ports_file(ports_file, bound_ports(stack))
    if on_ready is not None:
        on_ready(stack)
    await stop.wait()
    log.info("shutdown.begin", grace_s=settings.shutdown_grace_s, waiters=len(stack.waiters))
    await stack.stop(settings.shutdown_grace_s)
    app.close()
    log.info("shutdown.done")


def serve(
    *,
    listen: str | None = None,
    parts: set[str] | None = None,
    workers: int = 1,
    ports_file: str | None = None,
) -> int:
    settings = load_settings()
    if listen:
        settings = settings.with_overrides(grpc_listen=listen)
    if workers <= 1:
        settings = with_concrete_ports(settings)  # notify :0 -> a real port the notify URL can name
    configure_logging(settings.log_format, settings.log_level)
    for waiver in guard.enforce(settings).waivers:
        log.warning("serve.unsafe_opt_out", setting=waiver)
    if workers > 1:
        return _supervise(workers, settings)
    parts = parts or {"grpc", "notify", "jobs"}
    run_on_loop(
        settings, run_until_signal(settings, parts, reuse_port=settings.reuse_port, ports_file=ports_file)
    )
    return 0


def run_on_loop(settings: Settings, main: Coroutine[Any, Any, None]) -> None:
    """`main` on the event loop Settings.event_loop names: the standard library's (the default) or
    uvloop (measured side by side in docs/benchmarks.md)."""
    factory = uvloop.new_event_loop if settings.event_loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


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
    asyncio.run(_wait_for_signal())
    for child in children:
        child.send_signal(signal.SIGTERM)
    codes = [child.wait(timeout=settings.shutdown_grace_s + 5) for child in children]
    return max(codes, default=0)


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
