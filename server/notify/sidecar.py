"""Start the notify sidecar of an App: on the process's event loop (`serve_notify`, what
`orderpay serve` runs) or on its own thread (`start_notify`, for tests). `/metrics` has a listener of
its own (`serve_metrics`), never the internet-facing one."""

from __future__ import annotations

import functools
from concurrent.futures import Executor

from aiohttp import web

from server.adapters.notification_store import ping
from server.app import App
from server.config import Settings
from server.notify.app import make_notify_app
from server.notify.runner import NotifyServerThread, start_metrics_server, start_notify_server
from server.notify.shedding import ConnectionLimits
from server.serving.offload import InlineExecutor


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=settings.notify_max_connections,
        header_timeout_s=settings.notify_header_timeout_s,
        body_timeout_s=settings.notify_body_timeout_s,
        idle_timeout_s=settings.notify_idle_timeout_s,
    )


def _notify_app(app: App, executor: Executor | None) -> web.Application:
    if app.payments is None:
        raise RuntimeError("the notify sidecar needs the payments part (a credentials bundle)")
    return make_notify_app(
        app.payments.notifications,
        max_body_bytes=app.settings.notify_max_body_bytes,
        ready_check=functools.partial(ping, app.db),
        executor=executor,
        workers=max(1, app.settings.notify_workers),
    )


async def serve_notify(app: App, db_executor: Executor) -> tuple[web.AppRunner, int]:
    """The sidecar on the running event loop. With `notify_workers=0` (the default) a notification is
    verified and applied where database work runs (`db_executor`: inline on the loop for SQLite, the
    database threads for PostgreSQL); otherwise on a pool of its own."""
    executor = db_executor if app.settings.notify_workers == 0 else None
    host, _, port = app.settings.notify_listen.rpartition(":")
    return await start_notify_server(
        _notify_app(app, executor),
        host,
        int(port),
        grace_s=app.settings.shutdown_grace_s,
        limits=connection_limits(app.settings),
    )


async def serve_metrics(listen: str) -> tuple[web.AppRunner, int]:
    host, _, port = listen.rpartition(":")
    return await start_metrics_server(host or "127.0.0.1", int(port))


def start_notify(app: App) -> tuple[NotifyServerThread, int]:
    """The sidecar (and the metrics listener) on a thread of their own: for tests."""
    executor = InlineExecutor() if app.settings.notify_workers == 0 else None
    host, _, port = app.settings.notify_listen.rpartition(":")
    server = NotifyServerThread(
        lambda: _notify_app(app, executor),
        host,
        int(port),
        grace_s=app.settings.shutdown_grace_s,
        limits=connection_limits(app.settings),
        metrics_listen=app.settings.metrics_listen,
    )
    return server, server.start()
