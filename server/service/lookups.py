"""Loads every use case needs, with the same not-found answer everywhere."""

from __future__ import annotations

from server.domain.errors import OrderNotFoundError
from server.domain.order import Order
from server.service.ports import ReadUnitOfWork


def require_order(uow: ReadUnitOfWork, order_id: str) -> Order:
    order = uow.orders.get(order_id)
    if order is None:
        raise OrderNotFoundError(f"order {order_id!r} not found")
    return order
