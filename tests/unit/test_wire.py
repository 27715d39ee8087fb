"""The anti-corruption layer: WeChat's wire format to our typed shapes and back, total on bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.domain.errors import ProviderRejectedError
from server.domain.provider import CloseOutcome, PrepayRequest, RefundRequest
from server.domain.refund import RefundStatus
from server.wxpay.gateway import WeChatPayGateway
from server.wxpay.wire import (
    notification_report,
    prepay_answer,
    prepay_body,
    refund_body,
    refund_report,
    transaction_report,
)
from tests.support.fake_gateway import FakeGateway

PAID = {
    "mchid": "1900000109",
    "appid": "wxapp",
    "out_trade_no": "OP1",
    "transaction_id": "4200",
    "trade_state": "SUCCESS",
    "success_time": "2026-11-23T20:00:00+08:00",
    "amount": {"total": 1800},
}


def test_a_paid_transaction_carries_its_payment() -> None:
    report = transaction_report(PAID)
    assert (report.merchant_id, report.app_id, report.state, report.problem) == (
        "1900000109",
        "wxapp",
        "SUCCESS",
        "",
    )
    assert report.payment is not None
    assert (report.payment.transaction_id, report.payment.total) == ("4200", 1800)
    assert report.payment.success_time == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "garbled", [{"amount": None}, {"amount": {"total": "x"}}, {"success_time": "yesterday"}]
)
def test_a_garbled_paid_transaction_is_a_problem_not_an_exception(garbled: dict[str, object]) -> None:
    report = transaction_report({**PAID, **garbled})
    assert report.payment is None
    assert report.problem


def test_an_unpaid_transaction_has_no_payment() -> None:
    report = transaction_report({"mchid": "1", "out_trade_no": "OP1", "trade_state": "NOTPAY"})
    assert (report.payment, report.app_id, report.state) == (None, None, "NOTPAY")


def test_refund_reports_from_notifications_and_api_answers() -> None:
    assert refund_report({"out_refund_no": "R", "refund_status": "SUCCESS"}).status is RefundStatus.SUCCESS
    assert refund_report({"out_refund_no": "R", "status": "PROCESSING"}).status is RefundStatus.PROCESSING
    assert refund_report({"out_refund_no": "R", "refund_status": "WHATEVER"}).status is None
    assert refund_report({"refund_status": 7, "success_time": 3}) == refund_report({})


def test_notification_reports_by_event_type() -> None:
    assert notification_report("TRANSACTION.SUCCESS", PAID) == transaction_report(PAID)
    assert (
        notification_report("REFUND.ABNORMAL", {"out_refund_no": "R", "refund_status": "ABNORMAL"})
        is not None
    )
    assert notification_report("PROFITSHARING.OK", PAID) is None


def test_request_bodies_use_wechat_fields_and_china_time() -> None:
    expires = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    request = PrepayRequest("H5", "OP1", "VIP", "", 1800, expires, "http://n", client_ip="1.2.3.4")
    endpoint, body = prepay_body(request)
    assert endpoint == "h5"
    assert body["time_expire"] == "2026-11-23T20:00:00+08:00"
    assert body["amount"] == {"total": 1800, "currency": "CNY"}
    assert body["scene_info"]["payer_client_ip"] == "1.2.3.4"
    assert prepay_answer({"h5_url": "https://x/?prepay_id=wx9"}).prepay_id == "wx9"
    refund = refund_body(RefundRequest("OP1", "R1", 100, 1800, "", "http://n"))
    assert refund["amount"] == {"refund": 100, "total": 1800, "currency": "CNY"}
    assert "reason" not in refund


def test_the_gateway_turns_wechat_codes_into_outcomes() -> None:
    fake = FakeGateway()
    gateway = WeChatPayGateway(fake)
    assert gateway.query_transaction("OP-never") is None  # ORDER_NOT_EXIST
    gateway.prepay(PrepayRequest("NATIVE", "OP2", "VIP", "", 1800, datetime.now(UTC), "http://n"))
    fake.pay("OP2")
    assert gateway.close("OP2") is CloseOutcome.ALREADY_PAID  # ORDERPAID
    fake.fail_next.append(ProviderRejectedError("closed", metadata={"provider_code": "ORDER_CLOSED"}))
    assert gateway.close("OP2") is CloseOutcome.ALREADY_CLOSED
    fake.fail_next.append(ProviderRejectedError("no", metadata={"provider_code": "PARAM_ERROR"}))
    with pytest.raises(ProviderRejectedError):
        gateway.close("OP2")
