"""The running application: every collaborator the composition root built, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

import peewee as pw

from server.config import Settings
from server.domain.clock import Clock
from server.service.catalogue import CatalogueService
from server.service.orders import OrderService
from server.service.payments import PaymentService
from server.service.ports import UnitOfWorkFactory
from server.service.refunds import RefundService
from server.wxpay.client import WeChatPayClient
from server.wxpay.credentials import MerchantCredentials


@dataclass
class App:
    settings: Settings
    db: pw.Database
    uow: UnitOfWorkFactory
    read: UnitOfWorkFactory
    clock: Clock
    orders: OrderService
    catalogue: CatalogueService
    credentials: MerchantCredentials | None = None
    wxpay: WeChatPayClient | None = None
    payments: PaymentService | None = None
    refunds: RefundService | None = None
    extras: dict[str, object] = field(default_factory=dict)

    def close(self) -> None:
        if self.wxpay is not None:
            self.wxpay.shutdown()
        close_all = getattr(self.db, "close_all", None)
        if close_all is not None:
            close_all()
