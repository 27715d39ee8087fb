"""Start the notify sidecar of an App: on the process's event loop (`serve_notify`, what
`orderpay serve` runs) or on its own thread (`start_notify`, for tests). `/metrics` has a listener of
its own (`serve_metrics`), never the internet-facing one."""

from __future__ import annotations

import functools
from concurrent.futures import Executor
from dataclasses import dataclass

from aiohttp import web

from server.adapters.db import ready
from server.app import App
from server.config import Settings
from server.notify.app import make_metrics_app, make_notify_app
from server.serving.http import AppThread, listener_limits, serve_app
from server.serving.offload import InlineExecutor


def _notify_app(app: App, executor: Executor | None) -> web.Application:
    if app.payments is None:
        raise RuntimeError("the notify sidecar needs the payments part (a credentials bundle)")
    return make_notify_app(
        app.payments.notifications,
        max_body_bytes=app.settings.notify_max_body_bytes,
        ready_check=functools.partial(ready, app.db),  # PostgreSQL: a writable primary
        executor=executor,
        workers=max(1, app.settings.notify_workers),
    )


async def serve_notify(app: App, db_executor: Executor) -> tuple[web.AppRunner, int]:
    """The sidecar on the running event loop. With `notify_workers=0` (the default) a notification is
    verified and applied where database work runs (`db_executor`: inline on the loop for SQLite, the
    database threads for PostgreSQL); otherwise on a pool of its own."""
    executor = db_executor if app.settings.notify_workers == 0 else None
    host, _, port = app.settings.notify_listen.rpartition(":")
    return await serve_app(
        _notify_app(app, executor),
        host,
        int(port),
        grace_s=app.settings.shutdown_grace_s,
        limits=listener_limits(app.settings),
    )


async def serve_metrics(settings: Settings) -> tuple[web.AppRunner, int]:
    host, _, port = settings.metrics_listen.rpartition(":")
    return await serve_app(
        make_metrics_app(), host or "127.0.0.1", int(port), limits=listener_limits(settings)
    )


@dataclass
class NotifyThread:
    """The sidecar (and the metrics listener, when configured) on a thread: for tests."""

    thread: AppThread
    metrics_port: int | None

    def stop(self, timeout: float | None = None) -> None:
        self.thread.stop(timeout)


def start_notify(app: App) -> tuple[NotifyThread, int]:
    settings = app.settings
    executor = InlineExecutor() if settings.notify_workers == 0 else None
    host, _, port = settings.notify_listen.rpartition(":")
    listeners = [(lambda: _notify_app(app, executor), host, int(port), None)]
    if settings.metrics_listen:
        metrics_host, _, metrics_port = settings.metrics_listen.rpartition(":")
        listeners.append((make_metrics_app, metrics_host or "127.0.0.1", int(metrics_port), None))
    thread = AppThread(
        "notify-server", listeners, grace_s=settings.shutdown_grace_s, limits=listener_limits(settings)
    )
    ports = thread.start()
    return NotifyThread(thread, ports[1] if len(ports) > 1 else None), ports[0]
