"""Composition for reconciliation (issue 12): the lead moves `wire_reconciliation` into the one
composition root; until then `build_app` callers, the job wiring, the CLI and the gRPC server call it.
"""

from __future__ import annotations

from datetime import date, datetime, time

from server.adapters.recon_store import PeeweeReconStore
from server.app import App
from server.domain.reconciliation import BEIJING, ExceptionKind
from server.metrics import RECON_EXCEPTIONS, RECON_LAST_DAY
from server.service.reconciliation import ReconciliationService
from server.wxpay.bills import WeChatBills

EXTRAS_KEY = "reconciliation"


def observe_recon(open_counts: dict[ExceptionKind, int], last_day: date | None) -> None:
    for kind in ExceptionKind:
        RECON_EXCEPTIONS.labels(kind.value).set(open_counts.get(kind, 0))
    if last_day is not None:
        RECON_LAST_DAY.set(datetime.combine(last_day, time(0), tzinfo=BEIJING).timestamp())


def wire_reconciliation(app: App) -> ReconciliationService | None:
    """One service per App; None when the App has no WeChat Pay client (no credentials)."""
    existing = app.extras.get(EXTRAS_KEY)
    if isinstance(existing, ReconciliationService):
        return existing
    if app.wxpay is None:
        return None
    service = ReconciliationService(
        app.uow,
        app.read,
        app.clock,
        WeChatBills(app.wxpay),
        PeeweeReconStore(),
        app.payments,
        app.refunds,
        observer=observe_recon,
    )
    app.extras[EXTRAS_KEY] = service
    return service
