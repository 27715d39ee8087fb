"""Build the notify sidecar for an App and start it on its own thread (what `orderpay serve` runs)."""

from __future__ import annotations

from server.adapters.faults import TRANSIENT_DATABASE_ERRORS
from server.adapters.notification_store import NotificationStore
from server.app import App
from server.config import Settings
from server.notify.app import make_notify_app
from server.notify.runner import NotifyServerThread
from server.notify.shedding import ConnectionLimits
from server.service.notifications import NotificationService
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
            app.credentials,
            app.wxpay.key_store if app.wxpay is not None else app.credentials.verifier_keys(),
            app.settings.notify_clock_skew_s,
        ),
        payments=app.payments,
        refunds=app.refunds,
        transient_faults=TRANSIENT_DATABASE_ERRORS,  # incl. an exhausted connection pool
    )
    app.extras["notifications"] = service
    return service


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=settings.notify_max_connections,
        header_timeout_s=settings.notify_header_timeout_s,
        body_timeout_s=settings.notify_body_timeout_s,
        idle_timeout_s=settings.notify_idle_timeout_s,
    )


def start_notify(app: App) -> tuple[NotifyServerThread, int]:
    service = notification_service(app)
    store = NotificationStore(app.db, app.uow)
    host, _, port = app.settings.notify_listen.rpartition(":")
    server = NotifyServerThread(
        lambda: make_notify_app(
            service,
            max_body_bytes=app.settings.notify_max_body_bytes,
            ready_check=store.ping,
            workers=app.settings.notify_workers,
        ),
        host,
        int(port),
        grace_s=app.settings.shutdown_grace_s,
        limits=connection_limits(app.settings),
        metrics_listen=app.settings.metrics_listen,
    )
    return server, server.start()
