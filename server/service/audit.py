"""The audit row every status, fulfilment or attribute change writes in its own transaction."""

from __future__ import annotations

from server.domain.order import Order
from server.service.context import Caller
from server.service.shapes import AuditEvent


def audit(order: Order, field: str, before: object, after: object, cause: str, caller: Caller) -> AuditEvent:
    return AuditEvent(
        order_id=order.order_id,
        field=field,
        from_value=None if before is None else str(before),
        to_value=str(after),
        cause=cause,
        actor=caller.actor,
        request_id=caller.request_id,
    )
