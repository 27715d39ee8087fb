"""The composition root: builds every collaborator from Settings, once, and hands them out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from server.adapters.db import bind, make_database, migrate
from server.adapters.repositories import read_only_factory, unit_of_work_factory
from server.app import App
from server.config import Settings
from server.domain.clock import Clock, utc_now
from server.jobs.wiring import wire_fulfilment
from server.metrics import PROVIDER_CALLS, PROVIDER_CIRCUIT, PROVIDER_LATENCY
from server.service.catalogue import CatalogueService
from server.service.context import Caller
from server.service.orders import OrderService
from server.service.payments import PaymentService
from server.service.ports import MerchantIdentity
from server.service.refunds import RefundService
from server.wxpay.client import from_settings
from server.wxpay.credentials import load_credentials


def observe_provider(operation: str, outcome: str, seconds: float) -> None:
    PROVIDER_CALLS.labels(operation, outcome).inc()
    PROVIDER_LATENCY.labels(operation).observe(seconds)
    PROVIDER_CIRCUIT.set(1 if outcome == "circuit_open" else 0)


def build_app(settings: Settings, *, clock: Clock = utc_now, run_migrations: bool = True) -> App:
    db = make_database(
        settings.database_url, pool_size=settings.db_pool_size, busy_timeout_ms=settings.db_busy_timeout_ms
    )
    bind(db)
    if run_migrations:
        migrate(db)
    uow, read = unit_of_work_factory(db), read_only_factory(db)
    orders = OrderService(uow, clock, timedelta(seconds=settings.order_ttl_s), read=read)
    catalogue = CatalogueService(uow, clock, read=read)
    app = App(settings=settings, db=db, uow=uow, read=read, clock=clock, orders=orders, catalogue=catalogue)
    if (Path(settings.credentials_dir) / "merchant.json").exists():
        _wire_payments(app)
    return app


def _wire_payments(app: App) -> None:
    settings = app.settings
    credentials = load_credentials(settings.credentials_dir)
    client = from_settings(settings, credentials, observer=observe_provider)
    merchant = MerchantIdentity(mchid=credentials.mchid, appid=credentials.appid)
    payments = PaymentService(
        app.uow,
        app.clock,
        client,
        merchant,
        settings.notify_url,
        settings.reconcile_schedule_s,
        read=app.read,
    )
    refunds = RefundService(
        app.uow, app.clock, client, settings.notify_url, settings.refund_poll_schedule_s, read=app.read
    )
    app.orders.prepay_closer = payments.close_at_provider
    payments.refund_late_payment = lambda order: refunds.refund_order(
        order.order_id,
        f"PC{order.order_id}"[:64],
        order.paid_fee,
        "paid after close",
        Caller("system:late-payment"),
    )
    app.credentials, app.wxpay, app.payments, app.refunds = credentials, client, payments, refunds
    # Fulfil promptly after payment and revoke on full refund in every process, jobs or not.
    wire_fulfilment(app)
