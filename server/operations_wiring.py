"""Composition for the operator's side (issue 13): admin queries and the operations use cases for an App.

HOOK for the composition root: `bootstrap()` should build these once next to the other services
(they are cached in `app.extras` until then).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from server.adapters.admin_queries import AdminQueries, DescribeNotification
from server.adapters.operations_store import PeeweeLedgerControl
from server.app import App
from server.domain.notification import NotificationRejected
from server.service.operations import NotificationReplayer, OperationsService


def admin_queries(app: App) -> AdminQueries:
    existing = app.extras.get("admin_queries")
    if isinstance(existing, AdminQueries):
        return existing
    queries = AdminQueries(app.db, _describer(app))
    app.extras["admin_queries"] = queries
    return queries


def operations(app: App) -> OperationsService:
    existing = app.extras.get("operations")
    if isinstance(existing, OperationsService):
        return existing
    fulfil_now: Callable[[str], object] = _no_fulfilment
    replayer: NotificationReplayer | None = None
    if app.payments is not None:
        from server.jobs.wiring import wire_fulfilment  # noqa: PLC0415 - optional part
        from server.notify.wiring import notification_service  # noqa: PLC0415

        fulfil_now = wire_fulfilment(app).run_for_order
        if app.credentials is not None and app.refunds is not None:
            replayer = notification_service(app)
    service = OperationsService(
        app.uow,
        app.clock,
        PeeweeLedgerControl(),
        refunds=app.refunds,
        fulfil_now=fulfil_now,
        notifications=replayer,
        read=app.read,
    )
    app.extras["operations"] = service
    return service


def _describer(app: App) -> DescribeNotification | None:
    """Which order a stored notification is about: verified and decrypted with the merchant's keys."""
    credentials = app.credentials
    if credentials is None:
        return None
    from server.wxpay.notification import notification_parser  # noqa: PLC0415

    parse = notification_parser(credentials, credentials.verifier_keys(), app.settings.notify_clock_skew_s)

    def describe(headers: dict[str, str], body: str, received_at: datetime) -> dict[str, str] | None:
        try:
            note = parse(headers, body.encode("utf-8"), received_at.timestamp())
        except (NotificationRejected, ValueError):
            return None
        resource = note.resource
        return {k: str(resource.get(k, "")) for k in ("out_trade_no", "out_refund_no", "transaction_id")}

    return describe


def _no_fulfilment(order_id: str) -> None:
    del order_id  # without payments there is no fulfilment worker; nothing can be HELD either
