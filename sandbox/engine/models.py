"""The sandbox's state objects and how they render on the wire (the Transaction and Refund JSON)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sandbox.api.validation import PrepayRequest

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
TRADE_TYPES = {"jsapi": "JSAPI", "app": "APP", "h5": "MWEB", "native": "NATIVE"}
TRADE_STATE_DESC = {
    "NOTPAY": "订单未支付",
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "CLOSED": "订单已关闭",
}
REFUND_SUMMARY = {"SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}
SANDBOX_OPENID = "oSandbox_payer_openid_0000000"


def wire_time(when: datetime) -> str:
    """RFC 3339 in China time without fractions, as the gateway writes it (`2024-11-07T10:14:09+08:00`)."""
    return when.astimezone(CHINA).replace(microsecond=0).isoformat()


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


def new_prepay_id(now: datetime) -> str:
    return "wx" + now.astimezone(CHINA).strftime("%d%H%M%S") + secrets.token_hex(13)[:26]


def new_transaction_id(now: datetime) -> str:
    return "420000" + _digits(4) + now.astimezone(CHINA).strftime("%Y%m%d") + _digits(10)  # 28 digits


def new_refund_id(now: datetime) -> str:
    return "50" + _digits(5) + now.astimezone(CHINA).strftime("%Y%m%d") + _digits(14)  # 29 digits


@dataclass
class Trade:
    request: PrepayRequest
    created_at: datetime
    expires_at: datetime
    prepay_id: str
    prepay_issued_at: datetime
    cashier_token: str
    trade_state: str = "NOTPAY"
    transaction_id: str | None = None
    success_time: datetime | None = None
    payer_openid: str | None = None
    closed_at: datetime | None = None
    refund_nos: list[str] = field(default_factory=list)

    @property
    def out_trade_no(self) -> str:
        return self.request.out_trade_no

    @property
    def total(self) -> int:
        return self.request.total

    @property
    def is_paid(self) -> bool:
        return self.trade_state in {"SUCCESS", "REFUND"}

    def to_wire(self) -> dict[str, Any]:
        """The query answer; also the decrypted TRANSACTION.SUCCESS resource."""
        body: dict[str, Any] = self._parties()
        body.update(
            {
                "out_trade_no": self.out_trade_no,
                "trade_state": self.trade_state,
                "trade_state_desc": TRADE_STATE_DESC[self.trade_state],
                "amount": {"total": self.total, "currency": self.request.currency},
            }
        )
        if self.transaction_id is None or self.success_time is None:
            return body
        body.update(
            transaction_id=self.transaction_id,
            trade_type=TRADE_TYPES[self.request.channel],
            bank_type="OTHERS",
            attach=self.request.attach or "",
            success_time=wire_time(self.success_time),
            payer=self._payer(),
        )
        body["amount"].update(payer_total=self.total, payer_currency=self.request.currency)
        return body

    def _parties(self) -> dict[str, Any]:
        """Direct: appid/mchid. Partner (服务商): sp_appid/sp_mchid, sub_appid (when given)/sub_mchid."""
        request = self.request
        if not request.partner:
            return {"appid": request.appid, "mchid": request.mchid}
        parties = {"sp_appid": request.appid, "sp_mchid": request.mchid, "sub_mchid": request.sub_mchid}
        if request.sub_appid:
            parties["sub_appid"] = request.sub_appid
        return parties

    def _payer(self) -> dict[str, str]:
        if not self.request.partner:
            return {"openid": self.payer_openid or SANDBOX_OPENID}
        payer = {"sp_openid": self.payer_openid or SANDBOX_OPENID}
        if self.request.payer_sub_openid:
            payer["sub_openid"] = self.request.payer_sub_openid
        return payer


@dataclass
class Refund:
    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    refund: int
    total: int
    currency: str
    reason: str | None
    notify_url: str | None
    funds_account: str
    create_time: datetime
    status: str = "PROCESSING"
    success_time: datetime | None = None

    def _amount(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "refund": self.refund,
            "payer_total": self.total,
            "payer_refund": self.refund,
            "settlement_total": self.total,
            "settlement_refund": self.refund,
            "discount_refund": 0,
            "currency": self.currency,
            "from": [],
        }

    def to_wire(self) -> dict[str, Any]:
        """The refund create / query answer (`status`)."""
        body: dict[str, Any] = {
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": wire_time(self.create_time),
            "status": self.status,
            "funds_account": self.funds_account,
            "amount": self._amount(),
            "promotion_detail": [],
        }
        if self.success_time is not None:
            body["success_time"] = wire_time(self.success_time)
        return body

    def to_notification(self, mchid: str, sub_mchid: str | None = None) -> dict[str, Any]:
        """The decrypted REFUND.* resource (`refund_status`, not `status`); partner: sp_mchid/sub_mchid."""
        parties = {"mchid": mchid} if sub_mchid is None else {"sp_mchid": mchid, "sub_mchid": sub_mchid}
        body: dict[str, Any] = {
            **parties,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "refund_status": self.status,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": self.total,
                "refund": self.refund,
                "payer_total": self.total,
                "payer_refund": self.refund,
            },
        }
        if self.success_time is not None:
            body["success_time"] = wire_time(self.success_time)
        return body
