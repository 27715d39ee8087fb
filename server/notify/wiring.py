"""Build the notify sidecar for an App: on the process's event loop (`serve_notify`, what
`orderpay serve` runs) or on its own thread (`start_notify`, for tests)."""

from __future__ import annotations

from concurrent.futures import Executor

from aiohttp import web

from server.adapters.notification_store import TRANSIENT_DATABASE_ERRORS, NotificationStore
from server.app import App
from server.notify.app import make_notify_app
from server.notify.runner import NotifyServerThread, start_notify_server
from server.service.notifications import NotificationService
from server.serving.offload import InlineExecutor
from server.wxpay.notification import notification_parser


def notification_service(app: App) -> NotificationService:
    if app.credentials is None or app.payments is None or app.refunds is None:
        raise RuntimeError("the notify sidecar needs a credentials bundle (ORDERPAY_CREDENTIALS_DIR)")
    existing = app.extras.get("notifications")
    if isinstance(existing, NotificationService):
        return existing
    service = NotificationService(
        store=NotificationStore(app.db, app.uow),
        clock=app.clock,
        parse=notification_parser(
            app.credentials, app.credentials.verifier_keys(), app.settings.notify_clock_skew_s
        ),
        payments=app.payments,
        refunds=app.refunds,
        transient_faults=TRANSIENT_DATABASE_ERRORS,  # incl. an exhausted connection pool
    )
    app.extras["notifications"] = service
    return service


def start_notify(app: App) -> tuple[NotifyServerThread, int]:
    service = notification_service(app)
    store = NotificationStore(app.db, app.uow)
    host, _, port = app.settings.notify_listen.rpartition(":")
    server = NotifyServerThread(
        lambda: make_notify_app(
            service,
            max_body_bytes=app.settings.notify_max_body_bytes,
            ready_check=store.ping,
            executor=InlineExecutor() if app.settings.notify_workers == 0 else None,
            workers=max(1, app.settings.notify_workers),
        ),
        host,
        int(port),
        grace_s=app.settings.shutdown_grace_s,
    )
    return server, server.start()


async def serve_notify(app: App, db_executor: Executor) -> tuple[web.AppRunner, int]:
    """The sidecar on the running event loop (what `orderpay serve` runs). With `notify_workers=0`
    a notification is verified and applied where database work runs (`db_executor`: inline on the
    loop for SQLite, the database threads for PostgreSQL); otherwise on a pool of its own."""
    service = notification_service(app)
    store = NotificationStore(app.db, app.uow)
    host, _, port = app.settings.notify_listen.rpartition(":")
    workers = app.settings.notify_workers
    notify_app = make_notify_app(
        service,
        max_body_bytes=app.settings.notify_max_body_bytes,
        ready_check=store.ping,
        executor=db_executor if workers == 0 else None,
        workers=max(1, workers),
    )
    return await start_notify_server(notify_app, host, int(port), grace_s=app.settings.shutdown_grace_s)
