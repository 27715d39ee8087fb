"""The running application: every collaborator the composition root built, in one frozen place."""

from __future__ import annotations

from dataclasses import dataclass

import peewee as pw

from server.adapters.admin_queries import AdminQueries
from server.adapters.decisions import FulfilmentDecisions
from server.adapters.gateways import MerchantGateways
from server.config import Settings
from server.domain.clock import Clock
from server.service.catalogue import CatalogueService
from server.service.external import ExternalFulfilment
from server.service.feed import FeedService
from server.service.fulfilment import FulfilmentWorker
from server.service.notifications import NotificationService
from server.service.operations import OperationsService
from server.service.orders import OrderService
from server.service.payments import PaymentService
from server.service.ports import ReadFactory, UnitOfWorkFactory
from server.service.reconciliation import ReconciliationService
from server.service.refunds import RefundService
from server.service.webhooks import WebhookService
from server.wxpay.credentials import MerchantCredentials


@dataclass(frozen=True)
class PaymentsPart:
    """Everything that needs the merchant's credentials: built whole, or not at all."""

    credentials: MerchantCredentials
    gateways: MerchantGateways  # each merchant's payment gateway (today: the bundle's one merchant)
    payments: PaymentService
    refunds: RefundService
    notifications: NotificationService
    fulfilment: FulfilmentWorker
    reconciliation: ReconciliationService  # 对账 against WeChat Pay's daily bills
    decisions: FulfilmentDecisions  # "fulfilment decided" announcements: the server's long-polls subscribe
    external: ExternalFulfilment  # EXTERNAL products: the business's answers (ConfirmFulfilment, ...)


@dataclass(frozen=True)
class App:
    settings: Settings
    db: pw.Database
    uow: UnitOfWorkFactory
    read: ReadFactory  # committed data, getters only
    clock: Clock
    orders: OrderService
    catalogue: CatalogueService
    payments: PaymentsPart | None  # None only when built with payments_required=False
    admin: AdminQueries  # the operator's read side (admin API, console)
    operations: OperationsService  # the operator's actions
    feed: FeedService  # the order event feed (issue 19)
    webhooks: WebhookService  # signed webhooks for its subscribers (issue 19 item 4)

    def close(self) -> None:
        if self.payments is not None:
            self.payments.gateways.shutdown()
        self.admin.close()  # the read standby's pool, when there is one
        close_all = getattr(self.db, "close_all", None)
        if close_all is not None:
            close_all()
