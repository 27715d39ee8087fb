"""What we ask the payment provider and what it reports, in our terms (server.wxpay.wire translates).

Reports are total: a report the provider garbled carries a `problem` instead of raising, so the
use case decides what a garbled report means (a refused resource) where it decides everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from server.domain.order import ReceivedPayment
from server.domain.refund import Refund, RefundStatus
from server.domain.validation import OUT_REFUND_NO, Violations


@dataclass(frozen=True)
class PrepayRequest:
    channel: str  # JSAPI | MINIPROGRAM | APP | NATIVE | H5
    out_trade_no: str
    description: str
    attach: str
    total_fee: int
    expires_at: datetime
    notify_url: str
    payer_openid: str | None = None
    client_ip: str | None = None


@dataclass(frozen=True)
class Prepay:
    prepay_id: str
    payload: str = ""  # the QR code URL (NATIVE) or the H5 page URL


# The channels a client may pay on (pay_service.proto PayChannel); a provider says what each needs.
PAY_CHANNELS: Final = ("JSAPI", "MINIPROGRAM", "APP", "NATIVE", "H5")


@dataclass(frozen=True)
class MerchantIdentity:
    """A merchant account at the provider and the app it takes payments for (WeChat: mchid, appid).

    With several accounts (issue 18): `account` names it, `app_ids` are every app it pays under, and a
    sub-merchant reached through a service provider has `merchant_id` = the provider's (sp_mchid) and
    `sub_merchant_id` = its own (sub_mchid)."""

    merchant_id: str
    app_id: str
    account: str = "default"
    sub_merchant_id: str | None = None
    app_ids: frozenset[str] = frozenset()

    def accepts(self, merchant_id: str | None, app_id: str | None, sub_merchant_id: str | None) -> bool:
        """A report names this account: the same merchant (and sub-merchant), and one of its apps."""
        apps = self.app_ids | {self.app_id}
        return merchant_id == self.merchant_id and sub_merchant_id == self.sub_merchant_id and app_id in apps


@dataclass(frozen=True)
class ChannelRules:
    """What paying on one channel needs, as the provider defines it (server.wxpay.channels)."""

    channel: str  # JSAPI | MINIPROGRAM | APP | NATIVE | H5
    family: str  # channels of one family share one prepay; opaque, only compared
    needs_payer: bool = False  # the payer's id at the provider (an openid)
    needs_client_ip: bool = False  # the paying browser's IP (H5)


@dataclass(frozen=True)
class PayView:
    """What a client needs to pay a prepay: signed parameters, or a URL to open, until `expires_at`."""

    prepay_id: str
    expires_at: datetime
    params: dict[str, str]  # in-app / JSAPI pay parameters, signed; empty for URL channels
    code_url: str = ""  # NATIVE: the QR code's content
    h5_url: str = ""  # H5: the page to open


@dataclass(frozen=True)
class TransactionReport:
    """The provider's word on one payment: paid (with `payment`) or not (yet)."""

    out_trade_no: str
    merchant_id: str
    app_id: str | None  # None when the provider left it out
    state: str  # the provider's own state name, for logs only
    payment: ReceivedPayment | None = None  # set when, and only when, the money was taken
    problem: str = ""  # a paid report that does not parse: what is wrong with it
    sub_merchant_id: str | None = None  # partner (服务商) transactions: the sub_mchid


@dataclass(frozen=True)
class RefundRequest:
    out_trade_no: str
    out_refund_no: str
    amount: int
    order_total: int
    reason: str
    notify_url: str


@dataclass(frozen=True)
class RefundReport:
    out_refund_no: str
    status: RefundStatus | None  # None: a state we do not know
    out_trade_no: str = ""
    refund_id: str | None = None
    success_time: datetime | None = None
    merchant_id: str | None = None  # notifications name the merchant; API answers do not
    amount: int | None = None  # what the provider refunds; None when it left it out
    sub_merchant_id: str | None = None  # partner (服务商) refunds: the sub_mchid


class AbnormalRefundRoute(StrEnum):
    """Where the money of an ABNORMAL refund goes instead (WeChat's apply-abnormal-refund `type`)."""

    USER_BANK_CARD = "USER_BANK_CARD"
    MERCHANT_BANK_CARD = "MERCHANT_BANK_CARD"


@dataclass(frozen=True)
class AbnormalRefundRequest:
    refund_id: str
    out_refund_no: str
    route: AbnormalRefundRoute
    # USER_BANK_CARD only: the payer's debit card (sent encrypted)
    bank_type: str = ""
    bank_account: str = ""
    real_name: str = ""


# The `source` of reports that arrive as notifications (complete by WeChat's contract), as opposed to
# answers of our own calls (create, query, poll).
NOTIFY_SOURCE: Final = "notify"


class CloseOutcome(StrEnum):
    CLOSED = "closed"
    ALREADY_CLOSED = "already_closed"
    NOT_AT_PROVIDER = "not_at_provider"  # the provider never saw the order: nothing to close
    ALREADY_PAID = "already_paid"  # too late: the provider took the money


def refund_report_mismatch(
    report: RefundReport,
    refund: Refund,
    out_trade_no: str,
    merchant_id: str,
    *,
    complete: bool,
    sub_merchant_id: str | None = None,
) -> str:
    """Why this report may not settle `refund` ("" when it may). A notification (`complete`) must name
    the merchant, the order and the amount; an API answer is checked on what it carries. A partner
    refund names the order's sub-merchant too, and a direct one names none."""
    if report.sub_merchant_id != sub_merchant_id and (complete or report.sub_merchant_id is not None):
        return "sub_mchid differs"
    checks = (
        ("mchid", report.merchant_id, merchant_id),
        ("out_trade_no", report.out_trade_no or None, out_trade_no),
        ("amount", report.amount, refund.amount),
    )
    for name, reported, ours in checks:
        if reported is None:
            if complete:
                return f"{name} missing"
        elif reported != ours:
            return f"{name} differs"
    return ""


@dataclass(frozen=True)
class ResolveAbnormal:
    """An operator's follow-up for an ABNORMAL refund, and what it must carry."""

    out_refund_no: str
    route: AbnormalRefundRoute
    reason: str
    bank_type: str = ""
    bank_account: str = ""
    real_name: str = ""

    def validate(self) -> None:
        v = Violations()
        v.pattern(
            "out_refund_no", self.out_refund_no, OUT_REFUND_NO, "must be 1-64 characters of [0-9A-Za-z_-|*@]"
        )
        if not self.reason.strip():
            v.add("reason", "must say why (it goes into the audit trail)")
        v.text("reason", self.reason, 200)
        if self.route is AbnormalRefundRoute.USER_BANK_CARD:
            for name in ("bank_type", "bank_account", "real_name"):
                if not getattr(self, name):
                    v.add(name, "is required to send the money to the payer's card")
                v.text(name, getattr(self, name), 64)
        v.raise_if_any()

    def request(self, refund_id: str) -> AbnormalRefundRequest:
        return AbnormalRefundRequest(
            refund_id, self.out_refund_no, self.route, self.bank_type, self.bank_account, self.real_name
        )
