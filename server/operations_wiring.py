"""The operator's side of the composition root: admin queries and the operations use cases, built once
by `server.bootstrap.build_app` from the parts it already made."""

from __future__ import annotations

from server.adapters.admin_queries import AdminQueries
from server.adapters.read_routing import ReadRoute
from server.app import PaymentsPart
from server.domain.clock import Clock
from server.service.operations import OperationsService
from server.service.ports import ReadFactory, UnitOfWorkFactory


def build_operations(
    reads: ReadRoute,
    uow: UnitOfWorkFactory,
    read: ReadFactory,
    clock: Clock,
    payments: PaymentsPart | None,
) -> tuple[AdminQueries, OperationsService]:
    if payments is None:  # orders only: nothing can be HELD, refunded or replayed
        return AdminQueries(reads), OperationsService(uow, clock, read=read)
    service = OperationsService(
        uow,
        clock,
        refunds=payments.refunds,
        notifications=payments.notifications,
        read=read,
        abnormal=payments.refunds,
        recon=payments.reconciliation,
    )
    return AdminQueries(reads, payments.notifications.describe), service
