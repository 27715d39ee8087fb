"""The console never offers an action the use case would refuse, nor hides one it would carry out (an
idempotent repeat aside): each button of the order page (`order_actions`) against the operations use
case, on the same fixtures. DB-free."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.console.views import order_actions
from server.domain.catalogue import ProductKind
from server.domain.errors import DomainError
from server.domain.operations import RESOLVED_BY_REFUND, Resolution, needs_a_human
from server.domain.order import Fulfilment, Order, OrderStatus
from server.domain.refund import Refund, RefundStatus, live_refund_amount
from server.service.context import Caller
from server.service.handlers import Policy, transactional
from server.service.operations import OperationResult, OperationsService
from server.service.ports import MerchantIdentity
from server.service.refunds import RefundService
from server.wxpay.gateway import WeChatPayGateway
from tests.support.fake_gateway import FakeGateway
from tests.support.fake_uow import FakeDatabase

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MERCHANT = MerchantIdentity(merchant_id="1900000109", app_id="wxapp")
ADMIN = Caller("admin", "t")

STATUSES = [OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED, OrderStatus.CLOSED]
FULFILMENTS = [Fulfilment.PENDING, Fulfilment.HELD, Fulfilment.FAILED, Fulfilment.SUCCEEDED]
REASONS = ["", "boom", f"{RESOLVED_BY_REFUND}: customer asked"]
REFUNDS: list[RefundStatus | None] = [None, *RefundStatus]
FIXTURES = [
    (status, fulfilment, reason, refund)
    for status, fulfilment, reason, refund in itertools.product(STATUSES, FULFILMENTS, REASONS, REFUNDS)
    if (reason == "" or fulfilment is Fulfilment.FAILED)
    and (status is not OrderStatus.REFUNDED or refund in (None, RefundStatus.CLOSED))  # all went back already
]
# What the status says already went back (a SUCCESS refund), besides the fixture's own refund.
REFUNDED_FEN = {OrderStatus.PARTIALLY_REFUNDED: 600, OrderStatus.REFUNDED: 1800}


def clock() -> datetime:
    return NOW


def an_order(status: OrderStatus, fulfilment: Fulfilment, reason: str) -> Order:
    order_id = "ord_" + secrets.token_hex(6)
    values: dict[str, Any] = {
        "order_id": order_id,
        "out_trade_no": "OP" + secrets.token_hex(8),
        "user_id": "u-" + order_id,
        "request_id": "r",
        "fingerprint": "f",
        "product_id": "vip-month",
        "kind": ProductKind.VIP_PLAN,
        "quantity": 1,
        "total_fee": 1800,
        "description": "VIP",
        "attach": "",
        "article_id": None,
        "status": status,
        "fulfilment": fulfilment,
        "fulfilment_reason": reason,
        "version": 1,
        "expires_at": NOW + timedelta(minutes=30),
        "created_at": NOW,
        "updated_at": NOW,
        "paid_fee": 1800,
        "refunded_fee": REFUNDED_FEN.get(status, 0),
        "transaction_id": "4200" + order_id,
    }
    return Order(**values)


def a_refund(order: Order, status: RefundStatus, amount: int = 600, number: str = "R") -> Refund:
    return Refund(
        out_refund_no=number + order.order_id,
        order_id=order.order_id,
        amount=amount,
        order_total=order.total_fee,
        status=status,
        reason="part",
        submitted=True,
        version=1,
        created_at=NOW,
        updated_at=NOW,
        refund_id="50R",
    )


class Fixture:
    def __init__(self, status: OrderStatus, fulfilment: Fulfilment, reason: str, refund: RefundStatus | None):
        self.db = FakeDatabase()
        self.order = an_order(status, fulfilment, reason)
        self.refunds = [] if refund is None else [a_refund(self.order, refund)]
        if status in REFUNDED_FEN:
            self.refunds.append(a_refund(self.order, RefundStatus.SUCCESS, REFUNDED_FEN[status], "RS"))
        self.db.state.orders[self.order.order_id] = self.order
        for r in self.refunds:
            self.db.state.refunds[r.out_refund_no] = r
        uow = transactional(self.db.factory(), clock, Policy())
        gateway = WeChatPayGateway(FakeGateway(MERCHANT.merchant_id, MERCHANT.app_id))
        refunds = RefundService(uow, clock, gateway, MERCHANT, "http://n/notify", (60.0,))
        self.operations = OperationsService(uow, clock, refunds=refunds)

    def offered(self) -> dict[str, bool]:
        return order_actions(self.order, self.refunds)

    def takes(self, action: Callable[[OperationsService, str], OperationResult]) -> bool:
        """The use case does something (an idempotent repeat, "already_done", is not an action to offer)."""
        try:
            result = action(self.operations, self.order.order_id)
        except DomainError:
            return False
        return result.outcome != "already_done"


ACTIONS: dict[str, Callable[[OperationsService, str], OperationResult]] = {
    "can_resolve": lambda ops, order_id: ops.resolve_held(order_id, Resolution.REFUND, "why", 0, ADMIN),
    "can_accept": lambda ops, order_id: ops.resolve_held(order_id, Resolution.ACCEPT, "why", 0, ADMIN),
    "can_retry": lambda ops, order_id: ops.retry_fulfilment(order_id, "why", 0, ADMIN),
}


@pytest.mark.parametrize("button", sorted(ACTIONS))
def test_the_console_offers_exactly_what_the_use_case_takes(button: str) -> None:
    disagreements = []
    offered_somewhere = False
    for fixture_args in FIXTURES:
        fixture = Fixture(*fixture_args)
        offered = fixture.offered()[button]
        offered_somewhere |= offered
        if offered != fixture.takes(ACTIONS[button]):
            disagreements.append((*fixture_args, offered))
    assert disagreements == []
    assert offered_somewhere  # the comparison covers an offered button, not only hidden ones


def test_an_abnormal_refund_blocks_the_retry_button() -> None:
    """The drift the review found: the console counted PROCESSING and SUCCESS only."""
    fixture = Fixture(OrderStatus.PAID, Fulfilment.FAILED, "boom", RefundStatus.ABNORMAL)
    assert fixture.offered()["can_retry"] is False
    assert fixture.takes(ACTIONS["can_retry"]) is False


def test_what_needs_a_human_is_what_a_person_can_act_on() -> None:
    for fixture_args in FIXTURES:
        fixture = Fixture(*fixture_args)
        offered = fixture.offered()
        actionable = offered["can_resolve"] or offered["can_retry"]
        assert needs_a_human(fixture.order, live_refund_amount(fixture.refunds)) == actionable, fixture_args
