"""The anti-corruption layer: WeChat Pay's wire format in, our typed shapes out (and back).

Every WeChat field name and state the use cases depend on is translated here; `server.wxpay.gateway`
puts these translations behind the service layer's PaymentGateway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from server.domain.order import ReceivedPayment
from server.domain.provider import (
    AbnormalRefundRequest,
    AbnormalRefundRoute,
    Prepay,
    PrepayRequest,
    RefundReport,
    RefundRequest,
    TransactionReport,
)
from server.domain.refund import RefundStatus
from server.wxpay.channels import CLIENT_IP_ENDPOINTS, ENDPOINTS, PAYER_ENDPOINTS

CST: Final = ZoneInfo("Asia/Shanghai")  # WeChat's times are RFC 3339 in China Standard Time
CURRENCY: Final = "CNY"
PAID: Final = "SUCCESS"  # trade_state of a transaction that took the money
TRANSACTION_EVENT: Final = "TRANSACTION.SUCCESS"
REFUND_EVENT_PREFIX: Final = "REFUND."


def rfc3339(value: datetime) -> str:
    return value.astimezone(CST).replace(microsecond=0).isoformat()


# --- requests ---------------------------------------------------------------------------------------
def prepay_body(request: PrepayRequest) -> tuple[str, dict[str, Any]]:
    """The endpoint and body of a prepay (research §3)."""
    endpoint = ENDPOINTS[request.channel]  # the use case accepted only channels of channel_rules
    body: dict[str, Any] = {
        "description": request.description,
        "out_trade_no": request.out_trade_no,
        "time_expire": rfc3339(request.expires_at),
        "notify_url": request.notify_url,
        "amount": {"total": request.total_fee, "currency": CURRENCY},
    }
    if request.attach:
        body["attach"] = request.attach
    if endpoint in PAYER_ENDPOINTS:
        body["payer"] = {"openid": request.payer_openid}
    if endpoint in CLIENT_IP_ENDPOINTS:
        body["scene_info"] = {"payer_client_ip": request.client_ip, "h5_info": {"type": "Wap"}}
    return endpoint, body


def prepay_answer(answer: Mapping[str, Any]) -> Prepay:
    """JSAPI/APP answer with a prepay_id; NATIVE and H5 with a URL (keep a stable id from it)."""
    payload = str(answer.get("code_url") or answer.get("h5_url") or "")
    prepay_id = str(answer.get("prepay_id") or (payload.rsplit("=", 1)[-1][:64] if payload else ""))
    return Prepay(prepay_id, payload)


def refund_body(request: RefundRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "out_trade_no": request.out_trade_no,
        "out_refund_no": request.out_refund_no,
        "notify_url": request.notify_url,
        "amount": {"refund": request.amount, "total": request.order_total, "currency": CURRENCY},
    }
    if request.reason:
        body["reason"] = request.reason
    return body


def abnormal_refund_body(request: AbnormalRefundRequest, encrypt: Callable[[str], str]) -> dict[str, Any]:
    """apply-abnormal-refund: the payer's card details travel encrypted (敏感信息加密)."""
    body: dict[str, Any] = {"out_refund_no": request.out_refund_no, "type": request.route.value}
    if request.route is AbnormalRefundRoute.USER_BANK_CARD:
        body["bank_type"] = request.bank_type
        body["bank_account"] = encrypt(request.bank_account)
        body["real_name"] = encrypt(request.real_name)
    return body


# --- reports ----------------------------------------------------------------------------------------
def transaction_report(resource: Mapping[str, Any]) -> TransactionReport:
    """A transaction (a notification's decrypted resource or a query's answer). Never raises."""
    state = _text(resource.get("trade_state"))
    # A partner (服务商) transaction names sp_mchid/sp_appid and the sub-merchant's sub_mchid.
    appid = resource.get("appid", resource.get("sp_appid"))
    sub_mchid = resource.get("sub_mchid")
    report = TransactionReport(
        out_trade_no=_text(resource.get("out_trade_no")),
        merchant_id=_text(resource.get("mchid", resource.get("sp_mchid"))),
        app_id=appid if isinstance(appid, str) else None,
        state=state,
        sub_merchant_id=sub_mchid if isinstance(sub_mchid, str) else None,
    )
    if state != PAID:
        return report
    try:
        success = resource.get("success_time")
        payment = ReceivedPayment(
            out_trade_no=str(resource["out_trade_no"]),
            transaction_id=str(resource["transaction_id"]),
            total=int(resource["amount"]["total"]),
            success_time=datetime.fromisoformat(success) if success else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        return replace(report, problem=f"{exc!r}")
    return replace(report, payment=payment)


def refund_report(resource: Mapping[str, Any]) -> RefundReport:
    """A refund (notification resource: `refund_status`; API answers: `status`). Never raises."""
    status = _text(resource.get("refund_status") or resource.get("status"))
    refund_id = resource.get("refund_id")
    amount = resource.get("amount")
    refunded = amount.get("refund") if isinstance(amount, Mapping) else None
    mchid = resource.get("mchid", resource.get("sp_mchid"))
    sub_mchid = resource.get("sub_mchid")
    return RefundReport(
        out_refund_no=_text(resource.get("out_refund_no")),
        out_trade_no=_text(resource.get("out_trade_no")),
        status=RefundStatus(status) if status in RefundStatus.__members__ else None,
        refund_id=str(refund_id) if refund_id else None,
        success_time=_time(resource.get("success_time")),
        merchant_id=mchid if isinstance(mchid, str) else None,
        amount=refunded if isinstance(refunded, int) and not isinstance(refunded, bool) else None,
        sub_merchant_id=sub_mchid if isinstance(sub_mchid, str) else None,
    )


def notification_report(
    event_type: str, resource: Mapping[str, Any]
) -> TransactionReport | RefundReport | None:
    """What a notification reports, by its event type; None for events we do not handle."""
    if event_type == TRANSACTION_EVENT:
        return transaction_report(resource)
    if event_type.startswith(REFUND_EVENT_PREFIX):
        return refund_report(resource)
    return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
