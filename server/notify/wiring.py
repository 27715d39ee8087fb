"""Builds the sidecar's collaborators from the composition root's App."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from server.adapters.notification_store import TRANSIENT_DATABASE_ERRORS, NotificationStore
from server.bootstrap import App
from server.notify.app import make_notify_app
from server.service.notifications import NotificationService


def notification_service(app: App) -> NotificationService:
    """Needs the payments wiring (a credentials bundle): the sidecar is useless without it."""
    if app.credentials is None or app.payments is None or app.refunds is None:
        raise RuntimeError(
            f"no merchant credentials in {app.settings.credentials_dir}: run `orderpay keys init`"
        )
    return NotificationService(
        store=NotificationStore(app.db, app.uow),
        clock=app.clock,
        credentials=app.credentials,
        keys=app.credentials.verifier_keys(),
        payments=app.payments,
        refunds=app.refunds,
        max_skew_s=app.settings.notify_clock_skew_s,
        transient_faults=TRANSIENT_DATABASE_ERRORS,
    )


def notify_app_factory(app: App) -> Callable[[], web.Application]:
    """For `NotifyServerThread`: one service, a fresh Application per call."""
    service = notification_service(app)
    store = NotificationStore(app.db, app.uow)
    return lambda: make_notify_app(
        service, max_body_bytes=app.settings.notify_max_body_bytes, ready_check=store.ping
    )
