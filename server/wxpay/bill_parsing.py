"""WeChat Pay's bill files as CSV: columns found by header name (WeChat does not promise an order);
every detail field starts with a backtick; amounts are yuan, converted to fen with `Decimal`; BOM and
CRLF are tolerated. Anything else is `MalformedBillError`, with the line and column. Research
`beyond-parity.md` §1.3; split from server/wxpay/bills.py (the wire: apply, download, verify).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from server.domain.recon_records import BillRow, FundFlow, RowKind
from server.domain.reconciliation import BEIJING
from server.domain.text import escape_nonprintable
from server.domain.validation import OUT_REFUND_NO, OUT_TRADE_NO

# The first name is today's header; the others are the legacy v2 spellings of the same column.
TRADE_COLUMNS: dict[str, tuple[str, ...]] = {
    "time": ("交易时间",),
    "transaction_id": ("微信订单号",),
    "out_trade_no": ("商户订单号",),
    "state": ("交易状态",),
    "order_amount": ("订单金额", "总金额"),
    "refund_id": ("微信退款单号",),
    "out_refund_no": ("商户退款单号",),
    "refund_amount": ("申请退款金额", "退款金额"),
    "refund_status": ("退款状态",),
    "fee": ("手续费",),
}
# Read when present: a provider's own bill holds its sub-merchants' rows too, each naming its 特约商户号.
OPTIONAL_TRADE_COLUMNS: dict[str, tuple[str, ...]] = {"sub_mchid": ("特约商户号",)}
FUND_COLUMNS: dict[str, tuple[str, ...]] = {"direction": ("收支类型",), "amount": ("收支金额(元)",)}


# Yuan as WeChat writes them: digits, a point, at most `places` decimals; never an exponent, NaN or
# Infinity (Decimal would take those). Twelve integer digits keep every amount inside a 64-bit fen.
_AMOUNT = re.compile(r"(-?)([0-9]{1,12})(?:\.([0-9]+))?")
_WECHAT_ID = re.compile(r"[0-9A-Za-z_\-]{1,64}")  # transaction_id, refund_id: WeChat's own numbers
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


class MalformedBillError(ValueError):
    """The file is not a bill we can read (missing column, wrong field count, bad number), and where."""

    def __init__(self, message: str, *, line: int | None = None, column: str = "") -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column

    def at(self, line: int, column: str = "") -> MalformedBillError:
        return MalformedBillError(self.message, line=line, column=column or self.column)

    def __str__(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"line {self.line}" if self.line else "",
                f"column {self.column}" if self.column else "",
            )
            if part
        )
        return f"{where}: {self.message}" if where else self.message


def _lines(content: bytes) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line, decoded one line at a time: the file is never held
    a second time as text, nor as a list of lines (the audit's L7: 6.5 times the file in memory)."""
    for number, raw in enumerate(io.BytesIO(content), start=1):  # BytesIO shares the bytes, no copy
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # drops a BOM when there is one
        except UnicodeDecodeError as exc:
            raise MalformedBillError(f"not UTF-8 ({exc.reason})", line=number) from None
        line = line.rstrip("\r\n")  # \n and \r\n alike
        if line.strip():
            yield number, line


def _detail_rows(
    content: bytes, wanted: dict[str, tuple[str, ...]], optional: dict[str, tuple[str, ...]] | None = None
) -> Iterator[tuple[int, _Row]]:
    """(line number, row) for each detail line; a row's fields are read with `_Row.text` / `.fen`
    (an `optional` column the header lacks reads as "")."""
    lines = _lines(content)
    first = next(lines, None)
    if first is None:
        raise MalformedBillError("empty bill file", line=1)
    header = first[1].split(",")
    index: dict[str, tuple[int, str]] = {}
    for key, names in wanted.items():
        name = next((n for n in names if n in header), None)
        if name is not None:
            index[key] = (header.index(name), name)
    missing = [names[0] for key, names in wanted.items() if key not in index]
    if missing:
        raise MalformedBillError(f"bill header lacks {', '.join(missing)}", line=1)
    for key, names in (optional or {}).items():
        name = next((n for n in names if n in header), None)
        if name is not None:
            index[key] = (header.index(name), name)
    for number, line in lines:
        if not line.startswith("`"):
            return  # the summary header: detail rows are over
        # Every field starts with a backtick, so ",`" separates fields even when a text holds a comma.
        fields = line[1:].split(",`")
        if len(fields) != len(header):
            raise MalformedBillError(f"{len(fields)} fields, header has {len(header)}", line=number)
        yield number, _Row(number, {key: (fields[at].strip(), name) for key, (at, name) in index.items()})


class _Row:
    """One detail line's wanted fields, each with its column name for errors."""

    def __init__(self, line: int, fields: dict[str, tuple[str, str]]) -> None:
        self._line, self._fields = line, fields

    def text(self, key: str) -> str:
        found = self._fields.get(key)
        return "" if found is None else found[0]

    def fen(self, key: str, *, places: int = 2, signed: bool = False) -> int:
        value, column = self._fields[key]
        try:
            return yuan_to_fen(value, places=places, signed=signed)
        except MalformedBillError as exc:
            raise exc.at(self._line, column) from None

    def ident(self, key: str, rule: re.Pattern[str], *, empty_ok: bool = False) -> str:
        """An id WeChat writes in a known alphabet; anything else (ESC, markup, spaces) is malformed."""
        value, column = self._fields[key]
        if (value or not empty_ok) and rule.fullmatch(value) is None:
            shown = escape_nonprintable(value[:40])
            raise MalformedBillError(
                f"not an id WeChat Pay writes: {shown!r}", line=self._line, column=column
            )
        return value

    def time(self, key: str) -> datetime:
        value, column = self._fields[key]
        try:
            return _row_time(value)
        except MalformedBillError as exc:
            raise exc.at(self._line, column) from None


def yuan_to_fen(text: str, *, places: int = 2, signed: bool = False) -> int:
    """'12.34' → 1234; fees: '0.04000' → 4, '-0.01000' → -1 (`places=5, signed=True`: whole fen
    written with 5 decimals, negative on refund rows). Empty, NaN, Infinity, exponents, more decimals
    than `places`, and a sign where WeChat never writes one are malformed, never 0 or a guess."""
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise MalformedBillError(f"not an amount: {text!r}")
    if match.group(1) and not signed:
        raise MalformedBillError(f"negative amount: {text!r}")
    if match.group(3) is not None and len(match.group(3)) > places:
        raise MalformedBillError(f"more than {places} decimals: {text!r}")
    value = Decimal(text) * 100
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _row_time(text: str) -> datetime:
    """'2024-01-16 22:43:59', Beijing time (fromisoformat: ten times faster than strptime here)."""
    if _TIME.fullmatch(text) is None:
        raise MalformedBillError(f"not a time: {text!r}")
    try:
        return datetime.fromisoformat(text).replace(tzinfo=BEIJING)
    except ValueError as exc:
        raise MalformedBillError(f"not a time: {text!r}") from exc


def _is_refund(row: _Row) -> bool:
    return row.text("state") == "REFUND" or row.text("out_refund_no") not in {"", "0"}


def parse_trade_bill(content: bytes) -> list[BillRow]:
    return [_bill_row(row) for _, row in _detail_rows(content, TRADE_COLUMNS, OPTIONAL_TRADE_COLUMNS)]


def _bill_row(row: _Row) -> BillRow:
    refund = _is_refund(row)
    return BillRow(
        kind=RowKind.REFUND if refund else RowKind.PAYMENT,
        at=row.time("time"),
        out_trade_no=row.ident("out_trade_no", OUT_TRADE_NO),
        transaction_id=row.ident("transaction_id", _WECHAT_ID),
        amount_fen=row.fen("refund_amount" if refund else "order_amount"),
        fee_fen=row.fen("fee", places=5, signed=True),
        status=row.text("refund_status" if refund else "state"),
        out_refund_no=row.ident("out_refund_no", OUT_REFUND_NO) if refund else "",
        refund_id=row.ident("refund_id", _WECHAT_ID, empty_ok=True) if refund else "",
        sub_mchid=row.text("sub_mchid"),
    )


def parse_fund_flow_bill(content: bytes) -> FundFlow:
    income = expense = count = 0
    for _, row in _detail_rows(content, FUND_COLUMNS):
        count += 1
        if row.text("direction") == "收入":
            income += row.fen("amount")
        else:
            expense += row.fen("amount")
    return FundFlow(income_fen=income, expense_fen=expense, rows=count)
