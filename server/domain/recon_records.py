"""What reconciliation compares: WeChat's bill rows and bills, and orderpay's own payments and refunds,
as plain values (server/wxpay/bills.py reads the former, server/adapters/recon_locals.py the latter)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RowKind(StrEnum):
    PAYMENT = "PAYMENT"
    REFUND = "REFUND"


@dataclass(frozen=True)
class BillRow:
    """One detail row of the trade bill, in fen, as the parser (server/wxpay/bills.py) reads it."""

    kind: RowKind
    at: datetime
    out_trade_no: str
    transaction_id: str
    amount_fen: int  # payment: 订单金额; refund: 申请退款金额
    fee_fen: int  # 手续费 in fen, negative on refund rows
    status: str  # payment: 交易状态 (SUCCESS); refund: 退款状态
    out_refund_no: str = ""
    refund_id: str = ""
    sub_mchid: str = ""  # 特约商户号: the sub-merchant a provider's row is for ("" for a direct merchant)


@dataclass(frozen=True)
class FundFlow:
    income_fen: int
    expense_fen: int
    rows: int


@dataclass(frozen=True)
class TradeBill:
    content: bytes  # the file exactly as WeChat generated it (uncompressed), kept as evidence
    sha1: str
    rows: list[BillRow]


@dataclass(frozen=True)
class FundBill:
    content: bytes
    sha1: str
    flow: FundFlow


@dataclass(frozen=True)
class LocalPayment:
    order_id: str
    out_trade_no: str
    transaction_id: str | None  # None: orderpay does not know it as paid
    paid_fen: int
    paid_at: datetime | None


@dataclass(frozen=True)
class LocalRefund:
    out_refund_no: str
    refund_id: str | None
    out_trade_no: str
    amount_fen: int
    status: str
    created_at: datetime

    @property
    def reached_wechat(self) -> bool:
        """Only refunds WeChat accepted belong in its bill."""
        return self.refund_id is not None or self.status == "SUCCESS"
