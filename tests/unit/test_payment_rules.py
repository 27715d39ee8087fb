"""The rules of money without a database: the domain's transitions, and the payment and refund use
cases over an in-memory unit of work, with the real handler table reacting to their events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.adapters.gateways import MerchantGateways
from server.domain.errors import InvalidArgumentError, InvalidStateTransitionError, RefundExceedsPaidError
from server.domain.events import AmountMismatch, Event, OrderFullyRefunded, OrderPaid, PaidAfterClose
from server.domain.fulfilment import GrantState
from server.domain.membership import Membership
from server.domain.order import Fulfilment, Order, OrderStatus, ReceivedPayment
from server.domain.outcomes import ApplyOutcome
from server.domain.provider import AbnormalRefundRoute, ResolveAbnormal
from server.domain.refund import RefundStatus
from server.service.context import Caller
from server.service.handlers import HANDLERS, Policy, transactional
from server.service.payments import PaymentService
from server.service.ports import MerchantIdentity
from server.service.refunds import RefundService
from server.service.shapes import Grant
from server.wxpay.gateway import WeChatPayGateway
from server.wxpay.wire import refund_report, transaction_report
from tests.support import builders
from tests.support.fake_gateway import FakeGateway
from tests.support.fake_uow import FakeDatabase, recording

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MERCHANT = MerchantIdentity(merchant_id="1900000109", app_id="wxapp")
ADMIN = Caller("admin", "t")


def clock() -> datetime:
    return NOW


def an_order(status: OrderStatus = OrderStatus.UNPAID, total_fee: int = 1800, **fields: object) -> Order:
    return builders.an_order(NOW, status, total_fee, **fields)


def payment(order: Order, total: int | None = None) -> ReceivedPayment:
    return ReceivedPayment(
        order.out_trade_no, "4200" + order.order_id, order.total_fee if total is None else total
    )


# --- the domain alone -------------------------------------------------------------------------------
def test_a_payment_of_the_amount_due_pays_the_order() -> None:
    order = an_order()
    paid = order.apply_payment(payment(order), NOW)
    assert paid.outcome is ApplyOutcome.APPLIED
    assert (paid.order.status, paid.order.paid_fee, paid.order.fulfilment) == (
        OrderStatus.PAID,
        1800,
        Fulfilment.PENDING,
    )
    assert paid.events == (OrderPaid(order.order_id, "VIP_PLAN"),)
    again = paid.order.apply_payment(payment(order), NOW)
    assert (again.outcome, again.events, again.changed) == (ApplyOutcome.DUPLICATE, (), False)


def test_a_payment_after_close_is_held_and_raises_paid_after_close() -> None:
    closed = an_order().close(NOW)
    late = closed.apply_payment(payment(closed), NOW)
    assert late.outcome is ApplyOutcome.PAID_AFTER_CLOSE
    assert (late.order.status, late.order.fulfilment) == (OrderStatus.CLOSED, Fulfilment.HELD)
    assert late.events == (PaidAfterClose(closed.order_id),)
    refund = late.order.late_payment_refund()
    assert (refund.out_refund_no, refund.amount) == (f"PC{closed.order_id}", 1800)


def test_a_wrong_amount_is_held_and_never_fulfilled() -> None:
    order = an_order()
    short = order.apply_payment(payment(order, total=1), NOW)
    assert short.outcome is ApplyOutcome.AMOUNT_MISMATCH
    assert (short.order.status, short.order.fulfilment, short.order.paid_fee) == (
        OrderStatus.PAID,
        Fulfilment.HELD,
        1,
    )
    assert short.events == (AmountMismatch(order.order_id, 1, 1800),)


def test_refunds_credit_partly_then_fully_and_never_over_the_paid_amount() -> None:
    paid = an_order().apply_payment(payment(an_order()), NOW).order
    paid.check_refund(800, committed=0)
    part = paid.credit_refund(800, NOW)
    assert (part.order.status, part.order.refunded_fee, part.events) == (
        OrderStatus.PARTIALLY_REFUNDED,
        800,
        (),
    )
    full = part.order.credit_refund(1000, NOW)
    assert (full.order.status, full.events) == (OrderStatus.REFUNDED, (OrderFullyRefunded(paid.order_id),))
    with pytest.raises(RefundExceedsPaidError):
        paid.check_refund(1001, committed=800)
    with pytest.raises(InvalidStateTransitionError):
        an_order().check_refund(1, committed=0)  # UNPAID: nothing to give back


# --- the use cases over a fake unit of work -----------------------------------------------------------
class Stack:
    def __init__(self) -> None:
        self.db = FakeDatabase()
        self.gateway = FakeGateway(MERCHANT.merchant_id, MERCHANT.app_id)
        self.published: list[Event] = []
        uow = transactional(self.db.factory(), clock, Policy(), handlers=recording(HANDLERS, self.published))
        self.payments = PaymentService(
            uow,
            clock,
            MerchantGateways.single(MERCHANT, WeChatPayGateway(self.gateway)),
            MERCHANT,
            "http://n/notify",
            (60.0,),
        )
        self.refunds = RefundService(
            uow, clock, WeChatPayGateway(self.gateway), MERCHANT, "http://n/notify", (60.0,)
        )

    def add(self, order: Order) -> Order:
        self.db.state.orders[order.order_id] = order
        return order

    def pay(self, order: Order, total: int | None = None) -> ApplyOutcome:
        self.gateway.trades[order.out_trade_no] = {
            "out_trade_no": order.out_trade_no,
            "amount": {"total": order.total_fee},
        }
        resource = self.gateway.pay(order.out_trade_no, total=total)
        return self.payments.apply_transaction(transaction_report(resource), source="test").outcome

    def order(self, order_id: str) -> Order:
        return self.db.state.orders[order_id]


@pytest.fixture
def stack() -> Stack:
    return Stack()


def test_duplicate_payments_write_once_and_fulfil_once(stack: Stack) -> None:
    order = stack.add(an_order())
    assert stack.pay(order) is ApplyOutcome.APPLIED
    assert stack.pay(order) is ApplyOutcome.DUPLICATE
    assert stack.order(order.order_id).version == 2  # one write
    assert stack.db.state.ledger == {order.order_id: "PENDING"}  # OrderPaid's in-transaction reaction
    assert stack.published == [OrderPaid(order.order_id, "VIP_PLAN")]  # after commit, once


def test_paid_after_close_records_the_refund_without_calling_wechat(stack: Stack) -> None:
    order = stack.add(an_order(OrderStatus.CLOSED))
    assert stack.pay(order) is ApplyOutcome.PAID_AFTER_CLOSE
    held = stack.order(order.order_id)
    assert (held.status, held.fulfilment, held.paid_fee) == (OrderStatus.CLOSED, Fulfilment.HELD, 1800)
    refund = stack.db.state.refunds[f"PC{order.order_id}"]
    assert (refund.amount, refund.submitted, refund.reason) == (1800, False, "paid after close")
    assert stack.db.state.due_at[refund.out_refund_no] == NOW  # the refund job submits it
    assert stack.gateway.count("refund") == 0
    assert stack.db.state.ledger == {}  # nothing to fulfil


def test_amount_mismatch_is_held_without_a_ledger_row(stack: Stack) -> None:
    order = stack.add(an_order())
    assert stack.pay(order, total=1) is ApplyOutcome.AMOUNT_MISMATCH
    assert stack.order(order.order_id).fulfilment is Fulfilment.HELD
    assert stack.db.state.ledger == {}
    assert ("fulfilment", "PENDING", "HELD") in stack.db.audit_fields(order.order_id)


def test_partial_then_full_refund_and_the_grant_taken_back(stack: Stack) -> None:
    order = stack.add(an_order())
    stack.pay(order)
    stack.db.state.grants[order.order_id] = Grant(order.order_id, order.user_id, GrantState.GRANTED, 30)
    stack.db.state.memberships[order.user_id] = Membership(order.user_id, NOW + timedelta(days=30))
    stack.refunds.refund_order(order.order_id, "RA", 800, "part", ADMIN)
    stack.refunds.refund_order(order.order_id, "RB", 1000, "rest", ADMIN)
    settle = {"refund_status": "SUCCESS"}
    assert (
        stack.refunds.apply_refund(refund_report({"out_refund_no": "RA", **settle}), source="t").outcome
        is ApplyOutcome.APPLIED
    )
    assert stack.order(order.order_id).status is OrderStatus.PARTIALLY_REFUNDED
    assert stack.db.state.grants[order.order_id].state is GrantState.GRANTED
    stack.refunds.apply_refund(refund_report({"out_refund_no": "RB", **settle}), source="t")
    final = stack.order(order.order_id)
    assert (final.status, final.refunded_fee) == (OrderStatus.REFUNDED, 1800)
    # OrderFullyRefunded's reaction, in the settling transaction:
    assert stack.db.state.grants[order.order_id].state is GrantState.REVOKED
    assert stack.db.state.memberships[order.user_id].expires_at == NOW
    settled_again = stack.refunds.apply_refund(refund_report({"out_refund_no": "RB", **settle}), source="t")
    assert settled_again.outcome is ApplyOutcome.DUPLICATE


def test_over_refund_is_refused_and_writes_nothing(stack: Stack) -> None:
    order = stack.add(an_order())
    stack.pay(order)
    stack.refunds.refund_order(order.order_id, "R1", 1800, "all", ADMIN)
    before = stack.db.state.commits
    with pytest.raises(RefundExceedsPaidError):
        stack.refunds.refund_order(order.order_id, "R2", 1, "one more", ADMIN)
    assert stack.db.state.commits == before
    assert set(stack.db.state.refunds) == {"R1"}


def test_another_merchants_transaction_is_not_applied(stack: Stack) -> None:
    order = stack.add(an_order())
    stack.gateway.mchid = "1999999999"
    assert stack.pay(order) is ApplyOutcome.IDENTITY_MISMATCH
    assert stack.order(order.order_id).status is OrderStatus.UNPAID


def test_a_transaction_without_appid_is_a_mismatch_not_ours(stack: Stack) -> None:
    order = stack.add(an_order())
    stack.gateway.trades[order.out_trade_no] = {"out_trade_no": order.out_trade_no, "amount": {"total": 1800}}
    resource = stack.gateway.pay(order.out_trade_no)
    del resource["appid"]
    result = stack.payments.apply_transaction(transaction_report(resource), source="notify")
    assert result.outcome is ApplyOutcome.IDENTITY_MISMATCH
    assert stack.order(order.order_id).status is OrderStatus.UNPAID


def _refunded(stack: Stack, amount: int = 1800) -> Order:
    order = stack.add(an_order())
    stack.pay(order)
    stack.refunds.refund_order(order.order_id, "R1", amount, "back", ADMIN)
    return stack.order(order.order_id)


def _notified(order: Order, **changes: object) -> dict[str, object]:
    """A REFUND.SUCCESS notification resource as WeChat sends it, then `changes`."""
    resource: dict[str, object] = {
        "mchid": MERCHANT.merchant_id,
        "out_trade_no": order.out_trade_no,
        "out_refund_no": "R1",
        "refund_id": "50R1",
        "refund_status": "SUCCESS",
        "amount": {"total": 1800, "refund": 1800, "payer_total": 1800, "payer_refund": 1800},
    }
    resource.update(changes)
    return {k: v for k, v in resource.items() if v is not None}


@pytest.mark.parametrize(
    "changes",
    [
        {"mchid": "1999999999"},
        {"out_trade_no": "OP_SOMEONE_ELSE_0001"},
        {"amount": {"total": 1800, "refund": 1}},
        {"mchid": None},  # a notification must name the merchant
        {"amount": None},  # ... and the amount
    ],
    ids=["other-merchant", "other-order", "other-amount", "no-mchid", "no-amount"],
)
def test_a_refund_notification_that_does_not_match_is_recorded_and_never_credited(
    stack: Stack, changes: dict[str, object]
) -> None:
    order = _refunded(stack)
    report = refund_report(_notified(order, **changes))
    assert stack.refunds.apply_refund(report, source="notify").outcome is ApplyOutcome.REFUND_MISMATCH
    assert ApplyOutcome.REFUND_MISMATCH.alarming
    unchanged = stack.order(order.order_id)
    assert (unchanged.status, unchanged.refunded_fee) == (OrderStatus.PAID, 0)
    assert stack.db.state.refunds["R1"].status is RefundStatus.PROCESSING
    assert any("refund report refused" in cause for cause in stack.db.audit_causes(order.order_id))
    # the genuine notification still settles it
    genuine = refund_report(_notified(order))
    assert stack.refunds.apply_refund(genuine, source="notify").outcome is ApplyOutcome.APPLIED
    assert stack.order(order.order_id).refunded_fee == 1800


def test_an_abnormal_refund_still_counts_and_a_later_success_applies(stack: Stack) -> None:
    order = _refunded(stack)
    abnormal = refund_report(_notified(order, refund_status="ABNORMAL"))
    assert stack.refunds.apply_refund(abnormal, source="notify").outcome is ApplyOutcome.REFUND_ABNORMAL
    assert stack.db.state.refunds["R1"].status is RefundStatus.ABNORMAL
    with pytest.raises(RefundExceedsPaidError):  # the money is still the payer's: no second full refund
        stack.refunds.refund_order(order.order_id, "R2", 1800, "again", ADMIN)
    success = refund_report(_notified(order))
    assert stack.refunds.apply_refund(success, source="notify").outcome is ApplyOutcome.APPLIED
    final = stack.order(order.order_id)
    assert (final.status, final.refunded_fee) == (OrderStatus.REFUNDED, 1800)
    assert stack.refunds.apply_refund(success, source="notify").outcome is ApplyOutcome.DUPLICATE


def test_resolving_an_abnormal_refund_reopens_it_and_audits_the_reason(stack: Stack) -> None:
    order = _refunded(stack)
    stack.refunds.apply_refund(refund_report(_notified(order, refund_status="ABNORMAL")), source="notify")
    stack.gateway.refunds["R1"]["status"] = "ABNORMAL"
    command = ResolveAbnormal("R1", AbnormalRefundRoute.MERCHANT_BANK_CARD, "card closed, ticket 12")
    reopened = stack.refunds.resolve_abnormal(command, ADMIN)
    assert reopened.status is RefundStatus.PROCESSING
    assert stack.gateway.calls[-1] == (
        "apply_abnormal_refund",
        {"out_refund_no": "R1", "type": "MERCHANT_BANK_CARD"},
    )
    assert any("ticket 12" in cause for cause in stack.db.audit_causes(order.order_id))
    with pytest.raises(InvalidStateTransitionError):  # no longer ABNORMAL: nothing to resolve
        stack.refunds.resolve_abnormal(command, ADMIN)


def test_a_payers_card_needs_the_card_details_and_they_travel_encrypted(stack: Stack) -> None:
    order = _refunded(stack)
    stack.refunds.apply_refund(refund_report(_notified(order, refund_status="ABNORMAL")), source="notify")
    stack.gateway.refunds["R1"]["status"] = "ABNORMAL"
    with pytest.raises(InvalidArgumentError) as missing:
        stack.refunds.resolve_abnormal(
            ResolveAbnormal("R1", AbnormalRefundRoute.USER_BANK_CARD, "why"), ADMIN
        )
    assert {v.field for v in missing.value.violations} == {"bank_type", "bank_account", "real_name"}
    command = ResolveAbnormal("R1", AbnormalRefundRoute.USER_BANK_CARD, "why", "ICBC_DEBIT", "6222", "张三")
    stack.refunds.resolve_abnormal(command, ADMIN)
    sent = stack.gateway.calls[-1][1]
    assert sent["bank_type"] == "ICBC_DEBIT"
    assert sent["bank_account"] == "enc(6222)"
    assert sent["real_name"] == "enc(张三)"
