"""Payment and refund use cases on a real database with a fake gateway (no sockets)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.adapters.tables import FulfilmentRow, OrderEventRow, RefundRow
from server.app import App
from server.bootstrap import build_app
from server.domain.errors import (
    DomainError,
    InvalidArgumentError,
    InvalidStateTransitionError,
    OrderNotPayableError,
    RefundExceedsPaidError,
)
from server.domain.order import CreateOrder, Fulfilment, Order, OrderStatus
from server.domain.refund import RefundStatus
from server.service.context import Caller
from server.wxpay.gateway import WeChatPayGateway
from server.wxpay.wire import refund_report, transaction_report
from tests.support.fake_gateway import FakeGateway, unavailable
from tests.support.settings import settings_for
from tests.support.wechat import FACTS, make_bundle

BFF = Caller("bff", "t")
ADMIN = Caller("admin", "t")


@pytest.fixture(scope="module")
def gateway() -> FakeGateway:
    return FakeGateway(FACTS["mchid"], FACTS["appid"])


@pytest.fixture(scope="module")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory, gateway: FakeGateway) -> Iterator[App]:
    """The real composition root, with the fake in place of WeChat Pay."""
    bundle = make_bundle(tmp_path_factory.mktemp("keys"))
    settings = settings_for(
        database_url,
        credentials_dir=str(bundle),
        reconcile_schedule_s=(60.0,),
        refund_poll_schedule_s=(60.0,),
    )
    application = build_app(settings, gateway=WeChatPayGateway(gateway))
    application.catalogue.load_file()
    yield application
    application.close()


@pytest.fixture(autouse=True)
def fresh_gateway(gateway: FakeGateway) -> None:
    gateway.calls.clear()
    gateway.fail_next.clear()


def new_order(app: App, user: str, product: str = "vip-month") -> Order:
    return app.orders.create_order(CreateOrder("k", user, product, 1), BFF).order


def paid(app: App, gateway: FakeGateway, user: str) -> Order:
    order = new_order(app, user)
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    result = app.payments.payments.apply_transaction(
        transaction_report(gateway.pay(order.out_trade_no)), source="test"
    )
    assert result.outcome == "applied"
    assert result.order is not None
    return result.order


def fulfilment_rows(app: App, order_id: str) -> int:
    with app.db.connection_context():
        return FulfilmentRow.select().where(FulfilmentRow.order_id == order_id).count()


def test_prepay_is_reused_while_valid(app: App, gateway: FakeGateway, rid: str) -> None:
    order = new_order(app, f"u-{rid}")
    first = app.payments.payments.create_payment(order.order_id, "JSAPI", "openid-1", None, BFF)
    again = app.payments.payments.create_payment(order.order_id, "MINIPROGRAM", "openid-1", None, BFF)
    assert first.pay.prepay_id == again.pay.prepay_id
    assert first.pay.params["package"] == f"prepay_id={first.pay.prepay_id}"
    assert gateway.count("prepay") == 1
    body = gateway.calls[0][1]
    assert body["amount"] == {"total": 1800, "currency": "CNY"}  # the server's price
    assert body["time_expire"].endswith("+08:00")


def test_channel_switch_and_bad_channel_inputs_are_refused(app: App, rid: str) -> None:
    order = new_order(app, f"u-{rid}")
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    with pytest.raises(OrderNotPayableError):
        app.payments.payments.create_payment(order.order_id, "APP", None, None, BFF)
    with pytest.raises(InvalidArgumentError) as missing:
        app.payments.payments.create_payment(order.order_id, "JSAPI", None, None, BFF)
    assert {v.field for v in missing.value.violations} == {"payer_openid"}
    with pytest.raises(InvalidArgumentError):
        app.payments.payments.create_payment(order.order_id, "H5", None, "", BFF)


def test_closed_order_is_not_payable(app: App, rid: str) -> None:
    order = new_order(app, f"u-{rid}")
    app.orders.close_order(order.order_id, BFF)
    with pytest.raises(OrderNotPayableError):
        app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)


def test_apply_is_idempotent_and_writes_one_outbox_row(app: App, gateway: FakeGateway, rid: str) -> None:
    order = paid(app, gateway, f"u-{rid}")
    transaction = transaction_report(gateway.trades[order.out_trade_no])

    def apply(_: int) -> str:
        return app.payments.payments.apply_transaction(transaction, source="test").outcome

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(apply, range(16))) == {"duplicate"}
    assert fulfilment_rows(app, order.order_id) == 1
    assert app.orders.get_order(order.order_id).paid_fee == 1800


def test_amount_mismatch_is_held_without_fulfilment(app: App, gateway: FakeGateway, rid: str) -> None:
    order = new_order(app, f"u-{rid}")
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    result = app.payments.payments.apply_transaction(
        transaction_report(gateway.pay(order.out_trade_no, total=1)), source="test"
    )
    assert result.outcome == "amount_mismatch"
    held = app.orders.get_order(order.order_id)
    assert (held.status, held.fulfilment, held.paid_fee) == (OrderStatus.PAID, Fulfilment.HELD, 1)
    assert fulfilment_rows(app, order.order_id) == 0


@pytest.mark.parametrize(
    ("change", "outcome"),
    [
        ({"mchid": "other"}, "identity_mismatch"),
        ({"appid": "other"}, "identity_mismatch"),
        ({"trade_state": "NOTPAY"}, "not_success"),
        ({"out_trade_no": "OPnosuchorder000"}, "unknown_order"),
    ],
)
def test_foreign_or_unpaid_transactions_change_nothing(
    app: App, gateway: FakeGateway, rid: str, change: dict[str, str], outcome: str
) -> None:
    order = new_order(app, f"u-{rid}")
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    transaction = transaction_report({**gateway.pay(order.out_trade_no), **change})
    assert app.payments.payments.apply_transaction(transaction, source="test").outcome == outcome
    assert app.orders.get_order(order.order_id).status is OrderStatus.UNPAID


def test_close_when_wechat_already_took_the_money_applies_paid(
    app: App, gateway: FakeGateway, rid: str
) -> None:
    order = new_order(app, f"u-{rid}")
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    gateway.pay(order.out_trade_no)  # paid at WeChat; the notification never came
    with pytest.raises(InvalidStateTransitionError):
        app.orders.close_order(order.order_id, Caller("job:expiry"))
    assert app.orders.get_order(order.order_id).status is OrderStatus.PAID
    assert fulfilment_rows(app, order.order_id) == 1


def test_close_waits_for_wechat(app: App, gateway: FakeGateway, rid: str) -> None:
    order = new_order(app, f"u-{rid}")
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    gateway.fail_next.append(unavailable())
    with pytest.raises(DomainError) as info:
        app.orders.close_order(order.order_id, BFF)
    assert info.value.reason == "PROVIDER_UNAVAILABLE"
    assert app.orders.get_order(order.order_id).status is OrderStatus.UNPAID  # never closed locally first
    assert app.orders.close_order(order.order_id, BFF).status is OrderStatus.CLOSED


def test_payment_after_close_is_recorded_and_refunded(app: App, gateway: FakeGateway, rid: str) -> None:
    order = new_order(app, f"u-{rid}")
    app.orders.close_order(order.order_id, BFF)  # no prepay recorded locally: closed without WeChat
    gateway.trades[order.out_trade_no] = {"out_trade_no": order.out_trade_no, "amount": {"total": 1800}}
    result = app.payments.payments.apply_transaction(
        transaction_report(gateway.pay(order.out_trade_no)), source="test"
    )
    assert result.outcome == "paid_after_close"
    closed = app.orders.get_order(order.order_id)
    assert (closed.status, closed.paid_fee, closed.fulfilment) == (OrderStatus.CLOSED, 1800, Fulfilment.HELD)
    # PaidAfterClose's reaction recorded the refund with the payment; the refund job submits it.
    recorded = app.payments.refunds.get_refund(f"PC{order.order_id}", False, ADMIN)
    assert (recorded.amount, recorded.submitted, recorded.reason) == (1800, False, "paid after close")
    assert f"PC{order.order_id}" not in gateway.refunds  # nothing called WeChat on the apply path
    app.payments.refunds.sync_refund(f"PC{order.order_id}", Caller("job:refunds"))  # what the job does
    assert gateway.refunds[f"PC{order.order_id}"]["status"] == "PROCESSING"


def test_paying_fulfils_promptly_after_the_commit(app: App, gateway: FakeGateway, rid: str) -> None:
    order = paid(app, gateway, f"u-{rid}")
    assert app.orders.get_order(order.order_id).fulfilment is Fulfilment.SUCCEEDED
    assert fulfilment_rows(app, order.order_id) == 1


def test_refunds_never_exceed_paid_under_concurrency(app: App, gateway: FakeGateway, rid: str) -> None:
    order = paid(app, gateway, f"u-{rid}")

    def refund(i: int) -> str:
        try:
            app.payments.refunds.refund_order(order.order_id, f"R{rid}{i}", 500, "part", ADMIN)
        except RefundExceedsPaidError:
            return "EXCEEDS"
        return "OK"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = Counter(pool.map(refund, range(8)))
    assert outcomes == Counter({"OK": 3, "EXCEEDS": 5})  # 3 x 500 <= 1800 < 4 x 500
    with app.db.connection_context():
        assert RefundRow.select().where(RefundRow.order_id == order.order_id).count() == 3


def test_refund_timeout_is_retried_with_the_same_number(app: App, gateway: FakeGateway, rid: str) -> None:
    order = paid(app, gateway, f"u-{rid}")
    gateway.fail_next.append(unavailable())
    pending = app.payments.refunds.refund_order(order.order_id, f"R{rid}", 1800, "all", ADMIN)
    assert (pending.status, pending.submitted) == (RefundStatus.PROCESSING, False)
    again = app.payments.refunds.refund_order(
        order.order_id, f"R{rid}", 1800, "all", ADMIN
    )  # the BFF retries
    assert again.submitted
    synced = app.payments.refunds.sync_refund(f"R{rid}", ADMIN)
    assert synced.submitted
    numbers = [body["out_refund_no"] for name, body in gateway.calls if name == "refund"]
    assert numbers == [f"R{rid}", f"R{rid}"]  # same number every time: WeChat refunds once


def test_refund_settlement_moves_the_order(app: App, gateway: FakeGateway, rid: str) -> None:
    order = paid(app, gateway, f"u-{rid}")
    app.payments.refunds.refund_order(order.order_id, f"A{rid}", 800, "part", ADMIN)
    app.payments.refunds.refund_order(order.order_id, f"B{rid}", 1000, "rest", ADMIN)
    settle = {"refund_status": "SUCCESS", "success_time": "2026-11-23T20:01:00+08:00"}
    assert (
        app.payments.refunds.apply_refund(
            refund_report({"out_refund_no": f"A{rid}", **settle}), source="t"
        ).outcome
        == "applied"
    )
    assert app.orders.get_order(order.order_id).status is OrderStatus.PARTIALLY_REFUNDED
    assert (
        app.payments.refunds.apply_refund(
            refund_report({"out_refund_no": f"A{rid}", **settle}), source="t"
        ).outcome
        == "duplicate"
    )
    app.payments.refunds.apply_refund(refund_report({"out_refund_no": f"B{rid}", **settle}), source="t")
    final = app.orders.get_order(order.order_id)
    assert (final.status, final.refunded_fee) == (OrderStatus.REFUNDED, 1800)
    with app.db.connection_context():  # every status change has its audit row
        moves = [
            (e.from_value, e.to_value)
            for e in OrderEventRow.select()
            .where((OrderEventRow.order_id == order.order_id) & (OrderEventRow.field == "status"))
            .order_by(OrderEventRow.id)
        ]
    assert moves == [
        (None, "UNPAID"),
        ("UNPAID", "PAID"),
        ("PAID", "PARTIALLY_REFUNDED"),
        ("PARTIALLY_REFUNDED", "REFUNDED"),
    ]


def test_unpaid_orders_cannot_be_refunded(app: App, rid: str) -> None:
    order = new_order(app, f"u-{rid}")
    with pytest.raises(InvalidStateTransitionError):
        app.payments.refunds.refund_order(order.order_id, f"R{rid}", 1, "x", ADMIN)


def test_reconciler_schedule_backs_off_then_stops(app: App, rid: str) -> None:
    order = new_order(app, f"u-{rid}")
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    app.payments.payments.schedule_next_sync(order.order_id)
    stopped = app.orders.get_order(order.order_id)
    assert (stopped.sync_attempts, stopped.next_sync_at) == (1, None)  # one-step schedule in this test
