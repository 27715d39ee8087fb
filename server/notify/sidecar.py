"""Start the notify sidecar of an App on its own thread (what `orderpay serve` runs)."""

from __future__ import annotations

import functools

from server.adapters.notification_store import ping
from server.app import App
from server.config import Settings
from server.notify.app import make_notify_app
from server.notify.runner import NotifyServerThread
from server.notify.shedding import ConnectionLimits


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=settings.notify_max_connections,
        header_timeout_s=settings.notify_header_timeout_s,
        body_timeout_s=settings.notify_body_timeout_s,
        idle_timeout_s=settings.notify_idle_timeout_s,
    )


def start_notify(app: App) -> tuple[NotifyServerThread, int]:
    if app.payments is None:
        raise RuntimeError("the notify sidecar needs the payments part (a credentials bundle)")
    service = app.payments.notifications
    host, _, port = app.settings.notify_listen.rpartition(":")
    server = NotifyServerThread(
        lambda: make_notify_app(
            service,
            max_body_bytes=app.settings.notify_max_body_bytes,
            ready_check=functools.partial(ping, app.db),
            workers=app.settings.notify_workers,
        ),
        host,
        int(port),
        grace_s=app.settings.shutdown_grace_s,
        limits=connection_limits(app.settings),
        metrics_listen=app.settings.metrics_listen,
    )
    return server, server.start()
