"""Trade and fund-flow bills generated from the sandbox's own state, in WeChat Pay's exact CSV format.

Format (research `beyond-parity.md` §1.3): a header line without backticks, detail rows whose every
field starts with a backtick, a summary header and one summary row; amounts in yuan with 2 decimals,
fees with 5; the day runs 00:00–24:00 Beijing time; payments are dated by their success time, refunds
by their acceptance (`create_time`); a payment and a refund of one order are separate rows. Only paid
orders appear. No I/O here: the routes in `bill_routes.py` serve what this renders.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sandbox.config import Faults
from sandbox.engine.models import CHINA, SANDBOX_OPENID, TRADE_TYPES, Refund, Trade

FEE_RATE = Decimal("0.006")
FEE_RATE_TEXT = "0.60%"
BILL_READY_AT = time(10, 0)  # day D's bills can be fetched from 10:00 on D+1 (Beijing)
HISTORY = timedelta(days=90)  # WeChat serves the last 3 months
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

ALL_COLUMNS = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
    "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号",
    "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包",
    "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
)  # fmt: skip
_REFUND_ONLY = {
    "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "申请退款金额",
}  # fmt: skip
SUCCESS_COLUMNS = tuple(c for c in ALL_COLUMNS if c not in _REFUND_ONLY)
_AT = ALL_COLUMNS.index("代金券金额") + 1
REFUND_COLUMNS = (*ALL_COLUMNS[:_AT], "退款申请时间", "退款成功时间", *ALL_COLUMNS[_AT:])
TRADE_SUMMARY = (
    "总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额",
    "申请退款总金额",
)  # fmt: skip
FUND_COLUMNS = (
    "记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型", "收支金额(元)",
    "账户结余(元)", "资金变更提交申请人", "备注", "业务凭证号",
)  # fmt: skip
FUND_SUMMARY = ("资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额")
BILL_TYPES = {"ALL": ALL_COLUMNS, "SUCCESS": SUCCESS_COLUMNS, "REFUND": REFUND_COLUMNS}
FundsFaults = Callable[[str | None], Faults]


class BillUnavailable(Exception):  # noqa: N818 - a signal the routes turn into WeChat's error body
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Layout:
    """How the file is written: the global knobs `bill_bom` and `bill_crlf`."""

    bom: bool = False
    crlf: bool = False


def beijing_day(when: datetime) -> date:
    return when.astimezone(CHINA).date()


def check_available(day: date, now: datetime) -> None:
    """WeChat's answers for a day it cannot serve (yet): future, still being generated, too old."""
    today = beijing_day(now)
    if day > today:
        raise BillUnavailable("INVALID_REQUEST", "账单日期不合法：不能是未来日期")
    if day < today - HISTORY:
        raise BillUnavailable("INVALID_REQUEST", "只能下载三个月以内的账单")
    ready = datetime.combine(day + timedelta(days=1), BILL_READY_AT, tzinfo=CHINA)
    if now < ready:
        raise BillUnavailable("STATEMENT_CREATING", "账单生成中，请在次日10点后下载")


def fen_to_yuan(fen: int, places: int = 2) -> str:
    return f"{Decimal(fen) / 100:.{places}f}"


def fee_of(fen: int) -> int:
    return int((Decimal(fen) * FEE_RATE).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _stamp(when: datetime) -> str:
    return when.astimezone(CHINA).strftime(TIME_FORMAT)


def _payment_total(trade: Trade, faults: Faults) -> int:
    return trade.total + faults.bill_amount_delta_fen


def trade_rows(
    trades: Iterable[Trade], refunds: Iterable[Refund], day: date, faults_for: FundsFaults
) -> list[dict[str, str]]:
    """Every payment and refund of the Beijing day, as column → value, in time order."""
    rows: list[tuple[datetime, dict[str, str]]] = []
    by_trade: dict[str, Trade] = {}
    for trade in trades:
        by_trade[trade.out_trade_no] = trade
        faults = faults_for(trade.out_trade_no)
        if trade.success_time is None or beijing_day(trade.success_time) != day or faults.bill_omit:
            continue
        rows.append((trade.success_time, _payment_row(trade, _payment_total(trade, faults))))
    for refund in refunds:
        owner = by_trade.get(refund.out_trade_no)
        if owner is None or beijing_day(refund.create_time) != day:
            continue
        rows.append((refund.create_time, _refund_row(owner, refund)))
    rows.sort(key=lambda pair: pair[0])
    return [row for _, row in rows]


def _common(trade: Trade, when: datetime) -> dict[str, str]:
    return {
        "交易时间": _stamp(when),
        "公众账号ID": trade.request.appid,
        "商户号": trade.request.mchid,
        "特约商户号": trade.request.sub_mchid or "0",
        "设备号": "",
        "微信订单号": trade.transaction_id or "",
        "商户订单号": trade.out_trade_no,
        "用户标识": trade.payer_openid or SANDBOX_OPENID,
        "交易类型": TRADE_TYPES[trade.request.channel],
        "付款银行": "OTHERS",
        "货币种类": trade.request.currency,
        "代金券金额": "0.00",
        "充值券退款金额": "0.00",
        "商品名称": trade.request.description,
        "商户数据包": trade.request.attach or "",
        "费率": FEE_RATE_TEXT,
        "费率备注": "",
    }


def _payment_row(trade: Trade, total: int) -> dict[str, str]:
    assert trade.success_time is not None  # noqa: S101 - only paid trades get here
    return {
        **_common(trade, trade.success_time),
        "交易状态": "SUCCESS",
        "应结订单金额": fen_to_yuan(total),
        "微信退款单号": "0",
        "商户退款单号": "0",
        "退款金额": "0.00",
        "退款类型": "",
        "退款状态": "",
        "手续费": fen_to_yuan(fee_of(total), 5),
        "订单金额": fen_to_yuan(total),
        "申请退款金额": "0.00",
        "退款申请时间": "",
        "退款成功时间": "",
    }


def _refund_row(trade: Trade, refund: Refund) -> dict[str, str]:
    return {
        **_common(trade, refund.create_time),
        "交易状态": "REFUND",
        "应结订单金额": "0.00",
        "微信退款单号": refund.refund_id,
        "商户退款单号": refund.out_refund_no,
        "退款金额": fen_to_yuan(refund.refund),
        "退款类型": "ORIGINAL",
        "退款状态": refund.status,
        "手续费": fen_to_yuan(-fee_of(refund.refund), 5),
        "订单金额": "0.00",
        "申请退款金额": fen_to_yuan(refund.refund),
        "退款申请时间": _stamp(refund.create_time),
        "退款成功时间": _stamp(refund.success_time) if refund.success_time else "",
    }


def render_trade_bill(rows: list[dict[str, str]], bill_type: str, layout: Layout) -> bytes:
    columns = BILL_TYPES[bill_type]
    if bill_type == "SUCCESS":
        rows = [r for r in rows if r["交易状态"] == "SUCCESS"]
    elif bill_type == "REFUND":
        rows = [r for r in rows if r["交易状态"] == "REFUND"]
    if not rows:
        raise BillUnavailable("NO_STATEMENT_EXIST", "账单文件不存在")
    summary = (
        str(len(rows)),
        _sum(rows, "应结订单金额"),
        _sum(rows, "退款金额"),
        _sum(rows, "充值券退款金额"),
        _sum(rows, "手续费", places=5),
        _sum(rows, "订单金额"),
        _sum(rows, "申请退款金额"),
    )
    lines = [",".join(columns), *(_ticked(row.get(c, "") for c in columns) for row in rows)]
    lines += [",".join(TRADE_SUMMARY), _ticked(summary)]
    return _encode(lines, layout)


def _sum(rows: list[dict[str, str]], column: str, places: int = 2) -> str:
    total = sum((Decimal(row.get(column) or "0") for row in rows), Decimal(0))
    return f"{total:.{places}f}"


def _ticked(values: Iterable[str]) -> str:
    return ",".join("`" + value for value in values)


def _encode(lines: list[str], layout: Layout) -> bytes:
    text = ("\r\n" if layout.crlf else "\n").join(lines) + ("\r\n" if layout.crlf else "\n")
    return (("\ufeff" if layout.bom else "") + text).encode("utf-8")


# --- fund flow (BASIC account) ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Movement:
    at: datetime
    business_no: str
    name: str
    income: bool
    fen: int
    applicant: str
    remark: str
    voucher: str


def _movements(
    trades: Iterable[Trade], refunds: Iterable[Refund], faults_for: FundsFaults
) -> list[_Movement]:
    """Money in and out of the basic account: payments in, their fees out, refunds out (net of fee)."""
    out: list[_Movement] = []
    by_trade: dict[str, Trade] = {}
    for trade in trades:
        by_trade[trade.out_trade_no] = trade
        faults = faults_for(trade.out_trade_no)
        if trade.success_time is None or trade.transaction_id is None or faults.bill_omit:
            continue
        total = _payment_total(trade, faults)
        no, mchid = trade.transaction_id, trade.request.mchid
        out.append(_Movement(trade.success_time, no, "交易", True, total, "system", "", trade.out_trade_no))
        fee = fee_of(total)
        if fee:
            voucher = trade.out_trade_no
            out.append(_Movement(trade.success_time, no, "扣除交易手续费", False, fee, mchid, "", voucher))
    for refund in refunds:
        if refund.out_trade_no not in by_trade or refund.status not in {"PROCESSING", "SUCCESS"}:
            continue  # a refund WeChat refused or closed never left the account
        fee = fee_of(refund.refund)
        remark = f"退款总金额{fen_to_yuan(refund.refund)}元;含手续费{fen_to_yuan(fee)}元"
        out.append(
            _Movement(
                refund.create_time, refund.refund_id, "退款", False, refund.refund - fee,
                f"{by_trade[refund.out_trade_no].request.mchid}API", remark, refund.out_refund_no,
            )
        )  # fmt: skip
    out.sort(key=lambda m: m.at)
    return out


def render_fundflow_bill(
    trades: Iterable[Trade], refunds: Iterable[Refund], day: date, faults_for: FundsFaults, layout: Layout
) -> bytes:
    balance = 0
    lines = [",".join(FUND_COLUMNS)]
    counts = {True: 0, False: 0}
    sums = {True: 0, False: 0}
    for movement in _movements(trades, refunds, faults_for):
        balance += movement.fen if movement.income else -movement.fen
        if beijing_day(movement.at) != day:
            continue
        counts[movement.income] += 1
        sums[movement.income] += movement.fen
        serial = hashlib.sha1(f"{movement.business_no}{movement.name}".encode()).hexdigest()[:24]  # noqa: S324
        lines.append(
            _ticked(
                (
                    _stamp(movement.at), movement.business_no, serial, movement.name, movement.name,
                    "收入" if movement.income else "支出", fen_to_yuan(movement.fen), fen_to_yuan(balance),
                    movement.applicant, movement.remark, movement.voucher,
                )
            )
        )  # fmt: skip
    if len(lines) == 1:
        raise BillUnavailable("NO_STATEMENT_EXIST", "账单文件不存在")
    lines.append(",".join(FUND_SUMMARY))
    summary = (
        str(counts[True] + counts[False]), str(counts[True]), fen_to_yuan(sums[True]),
        str(counts[False]), fen_to_yuan(sums[False]),
    )  # fmt: skip
    lines.append(_ticked(summary))
    return _encode(lines, layout)
