"""Every path that raises an event gets its after-commit reactions from the unit of work: once per commit,
never after a rollback, and nobody publishes by hand. DB-free: the use cases over the fake unit of work,
with a handler table that also records what each commit published."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from server.adapters.gateways import MerchantGateways
from server.domain.events import (
    Event,
    FulfilmentReopened,
    OrderFullyRefunded,
    OrderPaid,
    RefundRequested,
    RefundSettled,
)
from server.domain.notification import Notification
from server.domain.operations import Resolution
from server.domain.order import Fulfilment, Order, OrderStatus
from server.domain.provider import TransactionReport
from server.service.context import Caller
from server.service.handlers import HANDLERS, Policy, Reactors, transactional
from server.service.notifications import Disposition, NotificationService
from server.service.operations import OperationsService
from server.service.payments import ApplyResult, PaymentService
from server.service.ports import MerchantIdentity, UnitOfWork, UnitOfWorkFactory
from server.service.refunds import RefundService
from server.wxpay.gateway import WeChatPayGateway
from server.wxpay.wire import transaction_report
from tests.support.builders import an_order
from tests.support.fake_gateway import FakeGateway
from tests.support.fake_uow import FakeDatabase, recording

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MERCHANT = MerchantIdentity(merchant_id="1900000109", app_id="wxapp")
ADMIN = Caller("admin", "t")


def clock() -> datetime:
    return NOW


class Fulfilments:
    """The fulfilment worker as the after-commit reactions see it: which orders it was asked to fulfil,
    and how many commits had happened by then."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.asked: list[tuple[str, int]] = []

    def fulfil(self, order_id: str) -> None:
        self.asked.append((order_id, self.db.state.commits))


class Stack:
    def __init__(self) -> None:
        self.db = FakeDatabase()
        self.fake = FakeGateway(MERCHANT.merchant_id, MERCHANT.app_id)
        self.published: list[Event] = []
        self.fulfilments = Fulfilments(self.db)
        self.uow: UnitOfWorkFactory = transactional(
            self.db.factory(),
            clock,
            Policy(),
            lambda _: Reactors(fulfilment=self.fulfilments),
            recording(HANDLERS, self.published),
        )
        gateway = WeChatPayGateway(self.fake)
        self.payments = PaymentService(
            self.uow, clock, MerchantGateways.single(MERCHANT, gateway), MERCHANT, "http://n/notify", (60.0,)
        )
        self.refunds = RefundService(self.uow, clock, gateway, MERCHANT, "http://n/notify", (60.0,))
        self.notes: dict[str, Notification] = {}
        self.notifications = NotificationService(
            uow=self.uow,
            clock=clock,
            parse=self._parse,
            payments=self.payments,
            refunds=self.refunds,
        )
        self.operations = OperationsService(self.uow, clock, refunds=self.refunds)

    def _parse(self, headers: Mapping[str, str], body: bytes, now: float) -> Notification:
        del headers, now
        return self.notes[body.decode()]

    def order(self, status: OrderStatus = OrderStatus.UNPAID, **fields: Any) -> Order:
        order = an_order(NOW, status, **fields)
        self.db.state.orders[order.order_id] = order
        self.fake.trades[order.out_trade_no] = {"out_trade_no": order.out_trade_no, "amount": {"total": 1800}}
        return order

    def paid_resource(self, order: Order, total: int | None = None) -> dict[str, Any]:
        return self.fake.pay(order.out_trade_no, total=total)

    def paid(self, order: Order, total: int | None = None) -> Order:
        self.payments.apply_transaction(transaction_report(self.paid_resource(order, total)), source="test")
        self.published.clear()
        self.fulfilments.asked.clear()
        return self.db.state.orders[order.order_id]

    def deliver(self, resource: dict[str, Any]) -> Disposition:
        key = "n-" + secrets.token_hex(6)
        self.notes[key] = Notification(
            key, "TRANSACTION.SUCCESS", "", "encrypt-resource", "", transaction_report(resource)
        )
        return self.notifications.receive({}, key.encode()).disposition


@pytest.fixture
def stack() -> Stack:
    return Stack()


def test_payment_publishes_order_paid_once_after_its_commit(stack: Stack) -> None:
    order = stack.order()
    resource = stack.paid_resource(order)
    for _ in range(2):  # the second is a duplicate: nothing new committed, nothing published
        stack.payments.apply_transaction(transaction_report(resource), source="query")
    assert stack.published == [OrderPaid(order.order_id, "VIP_PLAN")]
    assert stack.fulfilments.asked == [(order.order_id, 1)]  # prompt fulfilment, after the one commit


def test_notification_publishes_once_and_its_redelivery_publishes_nothing(stack: Stack) -> None:
    order = stack.order()
    resource = stack.paid_resource(order)
    assert stack.deliver(resource) is Disposition.ACK
    assert stack.deliver(resource) is Disposition.ACK  # another notification id, the same payment
    assert stack.published == [OrderPaid(order.order_id, "VIP_PLAN")]
    assert [order_id for order_id, _ in stack.fulfilments.asked] == [order.order_id]


class FailsAfterApplying:
    """The payment is applied (OrderPaid recorded), then the notification's transaction fails."""

    def __init__(self, payments: PaymentService) -> None:
        self._payments = payments

    def apply_in(
        self, uow: UnitOfWork, report: TransactionReport, *, source: str, account: str | None = None
    ) -> ApplyResult:
        self._payments.apply_in(uow, report, source=source)
        raise RuntimeError("a bug after the apply")


def test_a_notification_whose_transaction_rolls_back_publishes_nothing(stack: Stack) -> None:
    failing = NotificationService(
        uow=stack.uow,
        clock=clock,
        parse=stack._parse,
        payments=FailsAfterApplying(stack.payments),
        refunds=stack.refunds,
    )
    order = stack.order()
    stack.notes["bad"] = Notification(
        "bad",
        "TRANSACTION.SUCCESS",
        "",
        "encrypt-resource",
        "",
        transaction_report(stack.paid_resource(order)),
    )
    assert failing.receive({}, b"bad").disposition is Disposition.FAIL
    assert stack.db.state.orders[order.order_id].status is OrderStatus.UNPAID  # rolled back
    assert stack.db.state.notifications["bad"].status == "FAILED"  # kept for the re-processing job
    assert (stack.published, stack.fulfilments.asked) == ([], [])


def test_sync_as_reconciliation_repairs_publishes_once(stack: Stack) -> None:
    """ReconciliationService._repair and ReconcileTask repair through `sync_payment`."""
    order = stack.order()
    stack.paid_resource(order)  # WeChat took the money; no notification came
    stack.payments.sync_payment(order.order_id, ADMIN)
    stack.payments.sync_payment(order.order_id, ADMIN)
    assert stack.published == [OrderPaid(order.order_id, "VIP_PLAN")]


def test_refund_api_answer_that_settles_at_once_publishes_its_events(stack: Stack) -> None:
    order = stack.paid(stack.order())
    stack.fake.refunds["R1"] = {"out_refund_no": "R1", "refund_id": "50R1", "status": "SUCCESS"}
    refund = stack.refunds.refund_order(order.order_id, "R1", 1800, "all", ADMIN)
    assert refund.status.value == "SUCCESS"
    assert stack.published == [  # the refund's own events are for the event feed (server.service.feed)
        RefundRequested("R1"),
        RefundSettled("R1"),
        OrderFullyRefunded(order.order_id),
    ]


def test_refund_poll_that_settles_publishes_its_events_once(stack: Stack) -> None:
    order = stack.paid(stack.order())
    stack.refunds.refund_order(order.order_id, "R2", 1800, "all", ADMIN)
    assert stack.published == [RefundRequested("R2")]  # PROCESSING: nothing happened to the order yet
    stack.fake.refunds["R2"]["status"] = "SUCCESS"
    stack.refunds.sync_refund("R2", ADMIN)
    stack.refunds.sync_refund("R2", ADMIN)  # final already: no commit, no event
    assert stack.published == [RefundRequested("R2"), RefundSettled("R2"), OrderFullyRefunded(order.order_id)]
    assert stack.db.state.orders[order.order_id].status is OrderStatus.REFUNDED


def test_operator_accept_raises_fulfilment_reopened_and_its_reactions_run(stack: Stack) -> None:
    order = stack.paid(stack.order(), total=1)  # paid the wrong amount: HELD
    assert order.fulfilment is Fulfilment.HELD
    assert stack.db.state.ledger == {}
    commits = stack.db.state.commits
    stack.operations.resolve_held(order.order_id, Resolution.ACCEPT, "customer paid in cash", 0, ADMIN)
    assert stack.published == [FulfilmentReopened(order.order_id, "VIP_PLAN")]
    assert stack.db.state.ledger == {order.order_id: "PENDING"}  # in the accepting transaction
    assert stack.fulfilments.asked == [(order.order_id, commits + 1)]  # once, after that commit


def test_operator_retry_of_a_failed_fulfilment_reopens_it(stack: Stack) -> None:
    order = stack.order(
        OrderStatus.PAID, paid_fee=1800, fulfilment=Fulfilment.FAILED, fulfilment_reason="boom"
    )
    stack.db.state.ledger[order.order_id] = "FAILED"
    stack.operations.retry_fulfilment(order.order_id, "handler fixed", 0, ADMIN)
    assert stack.published == [FulfilmentReopened(order.order_id, "VIP_PLAN")]
    assert stack.db.state.ledger == {order.order_id: "PENDING"}
    assert [order_id for order_id, _ in stack.fulfilments.asked] == [order.order_id]


def test_a_refused_operator_action_publishes_nothing(stack: Stack) -> None:
    order = stack.order(OrderStatus.PAID, paid_fee=1800, fulfilment=Fulfilment.SUCCEEDED)
    with pytest.raises(Exception, match="only a HELD order"):
        stack.operations.resolve_held(order.order_id, Resolution.ACCEPT, "why", 0, ADMIN)
    assert (stack.published, stack.fulfilments.asked) == ([], [])
