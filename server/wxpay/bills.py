"""WeChat Pay's bills on the wire: apply, download at once, verify the SHA1, parse the CSV.

Protocol and format: research `beyond-parity.md` §1.2–§1.3. The apply answer is signed and carries the
SHA1 of the *uncompressed* file; the download answer is not signed, so the hash is the only integrity
check: a mismatch is an error and the file is fetched again, never parsed. A download URL lives about
30 s, so an `INVALID_REQUEST` on download means "apply again". Columns are found by header name (WeChat
does not promise an order); every detail field starts with a backtick; amounts are yuan, converted to
fen with `Decimal`; BOM and CRLF are tolerated.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import structlog

from server.domain.errors import ProviderRejectedError
from server.domain.recon_records import BillRow, FundBill, FundFlow, RowKind, TradeBill
from server.domain.reconciliation import BEIJING
from server.wxpay.client import WeChatPayClient
from server.wxpay.provider_errors import unavailable

log = structlog.get_logger("orderpay.bills")

MAX_BILL_BYTES = 256 << 20  # a day of a very busy merchant; the download is streamed up to this
FETCH_ATTEMPTS = 2  # a bad hash or an expired URL: apply once more, then give up for this run
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
FUND_COLUMNS: dict[str, tuple[str, ...]] = {"direction": ("收支类型",), "amount": ("收支金额(元)",)}


class MalformedBillError(ValueError):
    """The file is not a bill we can read (missing column, wrong field count, bad number)."""


class WeChatBills:
    """Applies for and downloads bills with the merchant client (signing, breaker, observer)."""

    def __init__(self, client: WeChatPayClient, max_bytes: int = MAX_BILL_BYTES) -> None:
        self._client = client
        self._max_bytes = max_bytes

    def trade_bill(self, day: date) -> TradeBill | None:
        """Day D's ALL bill; None when WeChat has no statement (a day without trades)."""
        content = self._fetch(
            "trade_bill", f"/v3/bill/tradebill?bill_date={day.isoformat()}&bill_type=ALL&tar_type=GZIP"
        )
        if content is None:
            return None
        return TradeBill(content, _sha1(content), parse_trade_bill(content))

    def fund_flow_bill(self, day: date) -> FundBill | None:
        path = f"/v3/bill/fundflowbill?bill_date={day.isoformat()}&account_type=BASIC&tar_type=GZIP"
        content = self._fetch("fundflow_bill", path)
        if content is None:
            return None
        return FundBill(content, _sha1(content), parse_fund_flow_bill(content))

    def _fetch(self, operation: str, apply_path: str) -> bytes | None:
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                applied = self._client.signed_get(operation, apply_path)
            except ProviderRejectedError as error:
                if error.metadata.get("provider_code") == "NO_STATEMENT_EXIST":
                    return None
                raise  # STATEMENT_CREATING and the rest: the caller decides
            try:
                raw = self._client.download(str(applied.get("download_url", "")), self._max_bytes)
            except ProviderRejectedError as error:
                if error.metadata.get("provider_code") == "INVALID_REQUEST" and attempt < FETCH_ATTEMPTS:
                    continue  # the URL expired between apply and download: apply again
                raise
            content = _gunzip(raw, self._max_bytes)
            expected = str(applied.get("hash_value", "")).lower()
            if _sha1(content) == expected:
                return content
            log.warning("bill.hash_mismatch", operation=operation, attempt=attempt)
        raise unavailable(
            "bill file does not match the hash WeChat Pay gave; not parsed",
            provider_code="BILL_HASH_MISMATCH",
        )


def _sha1(content: bytes) -> str:
    return hashlib.sha1(content).hexdigest()  # noqa: S324 - WeChat's documented bill digest


def _gunzip(raw: bytes, max_bytes: int) -> bytes:
    if not raw.startswith(b"\x1f\x8b"):
        return raw  # asked for GZIP, but a plain file is readable as it is
    try:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        content = decompressor.decompress(raw, max_bytes + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise unavailable("bill file is not valid gzip", provider_code="BILL_CORRUPT") from exc
    if len(content) > max_bytes or not decompressor.eof:
        raise unavailable("bill file is truncated or too large", provider_code="BILL_CORRUPT")
    return content


# --- parsing ---------------------------------------------------------------------------------------


def _lines(content: bytes) -> list[str]:
    text = content.decode("utf-8-sig")  # drops a BOM when there is one
    return [line for line in text.splitlines() if line.strip()]  # \n and \r\n alike


def _detail_rows(content: bytes, wanted: dict[str, tuple[str, ...]]) -> list[dict[str, str]]:
    lines = _lines(content)
    if not lines:
        raise MalformedBillError("empty bill file")
    header = lines[0].split(",")
    index: dict[str, int] = {}
    for key, names in wanted.items():
        position = next((header.index(n) for n in names if n in header), None)
        if position is not None:
            index[key] = position
    missing = [names[0] for key, names in wanted.items() if key not in index]
    if missing:
        raise MalformedBillError(f"bill header lacks {', '.join(missing)}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.startswith("`"):
            break  # the summary header: detail rows are over
        # Every field starts with a backtick, so ",`" separates fields even when a text holds a comma.
        fields = line[1:].split(",`")
        if len(fields) != len(header):
            raise MalformedBillError(f"line {number}: {len(fields)} fields, header has {len(header)}")
        rows.append({key: fields[position].strip() for key, position in index.items()})
    return rows


def yuan_to_fen(text: str) -> int:
    """'12.34' → 1234, '0.04000' → 4, '-0.01000' → -1 (fees are whole fen written with 5 decimals)."""
    try:
        value = Decimal(text or "0") * 100
    except InvalidOperation as exc:
        raise MalformedBillError(f"not an amount: {text!r}") from exc
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _row_time(text: str) -> datetime:
    """'2024-01-16 22:43:59', Beijing time (fromisoformat: ten times faster than strptime here)."""
    try:
        return datetime.fromisoformat(text).replace(tzinfo=BEIJING)
    except ValueError as exc:
        raise MalformedBillError(f"not a time: {text!r}") from exc


def _is_refund(row: dict[str, str]) -> bool:
    return row["state"] == "REFUND" or row["out_refund_no"] not in {"", "0"}


def parse_trade_bill(content: bytes) -> list[BillRow]:
    return [_bill_row(row) for row in _detail_rows(content, TRADE_COLUMNS)]


def _bill_row(row: dict[str, str]) -> BillRow:
    refund = _is_refund(row)
    return BillRow(
        kind=RowKind.REFUND if refund else RowKind.PAYMENT,
        at=_row_time(row["time"]),
        out_trade_no=row["out_trade_no"],
        transaction_id=row["transaction_id"],
        amount_fen=yuan_to_fen(row["refund_amount" if refund else "order_amount"]),
        fee_fen=yuan_to_fen(row["fee"]),
        status=row["refund_status" if refund else "state"],
        out_refund_no=row["out_refund_no"] if refund else "",
        refund_id=row["refund_id"] if refund else "",
    )


def parse_fund_flow_bill(content: bytes) -> FundFlow:
    income = expense = count = 0
    for row in _detail_rows(content, FUND_COLUMNS):
        count += 1
        if row["direction"] == "收入":
            income += yuan_to_fen(row["amount"])
        else:
            expense += yuan_to_fen(row["amount"])
    return FundFlow(income_fen=income, expense_fen=expense, rows=count)
