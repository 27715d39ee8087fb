"""Helpers of the operations tests."""

from __future__ import annotations

from server.adapters.tables import OrderEventRow
from server.app import App
from server.domain.order import CreateOrder, Order
from server.service.context import Caller
from server.wxpay.wire import transaction_report
from tests.support.fake_gateway import FakeGateway

BFF = Caller("bff", "t")


def held(app: App, gateway: FakeGateway, user: str) -> Order:
    """A VIP order paid 1 fen short: kept, HELD / AMOUNT_MISMATCH."""
    order = app.orders.create_order(CreateOrder("k", user, "vip-month", 1), BFF).order
    assert app.payments is not None
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    result = app.payments.payments.apply_transaction(
        transaction_report(gateway.pay(order.out_trade_no, order.total_fee - 1)), source="test"
    )
    assert result.outcome == "amount_mismatch"
    assert result.order is not None
    return result.order


def operations_rows(app: App, order_id: str) -> list[OrderEventRow]:
    with app.db.connection_context():
        return list(
            OrderEventRow.select().where(
                (OrderEventRow.order_id == order_id) & (OrderEventRow.field == "operation")
            )
        )
