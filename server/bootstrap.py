"""The composition root: builds every collaborator from Settings, once, and hands them out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import peewee as pw

from server.adapters.db import bind, make_database, migrate
from server.adapters.repositories import unit_of_work_factory
from server.config import Settings
from server.domain.clock import Clock, utc_now
from server.rpc.order_servicer import OrderServicer
from server.rpc.pay_servicer import UnimplementedPayServicer
from server.rpc.server import Servicers
from server.rpc.vip_servicer import VipServicer
from server.service.catalogue import CatalogueService
from server.service.orders import OrderService


@dataclass
class App:
    settings: Settings
    db: pw.Database
    orders: OrderService
    catalogue: CatalogueService

    def servicers(self) -> Servicers:
        return Servicers(
            order=OrderServicer(self.orders), pay=UnimplementedPayServicer(), vip=VipServicer(self.catalogue)
        )

    def close(self) -> None:
        close_all = getattr(self.db, "close_all", None)
        if close_all is not None:
            close_all()


def build_app(settings: Settings, *, clock: Clock = utc_now, run_migrations: bool = True) -> App:
    db = make_database(
        settings.database_url, pool_size=settings.db_pool_size, busy_timeout_ms=settings.db_busy_timeout_ms
    )
    bind(db)
    if run_migrations:
        migrate(db)
    uow = unit_of_work_factory(db)
    orders = OrderService(uow, clock, timedelta(seconds=settings.order_ttl_s))
    catalogue = CatalogueService(uow, clock)
    return App(settings=settings, db=db, orders=orders, catalogue=catalogue)
