"""The console never offers an action the use case would refuse, nor hides one it would carry out (an
idempotent repeat aside): each button of the order page (`order_actions`) against the operations use
case, on the same fixtures. DB-free."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from server.console.views import order_actions
from server.domain.errors import DomainError
from server.domain.operations import RESOLVED_BY_REFUND, Resolution, needs_a_human
from server.domain.order import Fulfilment, OrderStatus
from server.domain.refund import RefundStatus, live_refund_amount
from server.service.context import Caller
from server.service.handlers import Policy, transactional
from server.service.operations import OperationResult, OperationsService
from server.service.ports import MerchantIdentity
from server.service.refunds import RefundService
from server.wxpay.gateway import WeChatPayGateway
from tests.support.builders import a_paid_order, a_refund
from tests.support.fake_gateway import FakeGateway
from tests.support.fake_uow import FakeDatabase

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MERCHANT = MerchantIdentity(merchant_id="1900000109", app_id="wxapp")
ADMIN = Caller("admin", "t")

STATUSES = [OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED, OrderStatus.CLOSED]
FULFILMENTS = [Fulfilment.PENDING, Fulfilment.HELD, Fulfilment.FAILED, Fulfilment.SUCCEEDED]
REASONS = ["", "boom", f"{RESOLVED_BY_REFUND}: customer asked"]
REFUNDS: list[RefundStatus | None] = [None, *RefundStatus]
AMOUNTS = ["part", "rest"]  # of what is left: 600 fen, or all of it (a late payment's automatic refund)
FIXTURES = [
    (status, fulfilment, reason, refund, amount)
    for status, fulfilment, reason, refund, amount in itertools.product(
        STATUSES, FULFILMENTS, REASONS, REFUNDS, AMOUNTS
    )
    if (reason == "" or fulfilment is Fulfilment.FAILED)
    and (status is not OrderStatus.REFUNDED or refund in (None, RefundStatus.CLOSED))  # all went back already
    and (amount == "part" or (refund is not None and status is not OrderStatus.REFUNDED))
]
# What the status says already went back (a SUCCESS refund), besides the fixture's own refund.
REFUNDED_FEN = {OrderStatus.PARTIALLY_REFUNDED: 600, OrderStatus.REFUNDED: 1800}


def clock() -> datetime:
    return NOW


class Fixture:
    def __init__(
        self,
        status: OrderStatus,
        fulfilment: Fulfilment,
        reason: str,
        refund: RefundStatus | None,
        amount: str = "part",
    ):
        self.db = FakeDatabase()
        self.order = a_paid_order(
            NOW,
            status,
            fulfilment=fulfilment,
            fulfilment_reason=reason,
            refunded_fee=REFUNDED_FEN.get(status, 0),
        )
        fen = 600 if amount == "part" else self.order.paid_fee - REFUNDED_FEN.get(status, 0)
        self.refunds = [] if refund is None else [a_refund(self.order, refund, fen)]
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
