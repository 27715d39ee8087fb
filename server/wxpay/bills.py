"""WeChat Pay's bills on the wire: apply, download at once, verify the SHA1, parse the CSV.

Protocol and format: research `beyond-parity.md` §1.2–§1.3. The apply answer is signed and carries the
SHA1 of the *uncompressed* file; the download answer is not signed, so the hash is the only integrity
check: a mismatch is an error and the file is fetched again, never parsed. A download URL lives about
30 s, so an `INVALID_REQUEST` on download means "apply again". The CSV itself is read by
server/wxpay/bill_parsing.py; a sub-merchant's encrypted fund-flow bill by server/wxpay/partner_bills.py.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Callable
from datetime import date
from typing import TypeVar
from urllib.parse import quote

import structlog

from server.domain.errors import ProviderRejectedError
from server.domain.recon_records import FundBill, TradeBill
from server.domain.reconciliation import BILL_MALFORMED
from server.wxpay.bill_parsing import (
    FUND_COLUMNS,
    OPTIONAL_TRADE_COLUMNS,
    TRADE_COLUMNS,
    MalformedBillError,
    parse_fund_flow_bill,
    parse_trade_bill,
    yuan_to_fen,
)
from server.wxpay.client import WeChatPayClient
from server.wxpay.partner_bills import fetch_sub_fund_flow
from server.wxpay.provider_errors import unavailable

log = structlog.get_logger("orderpay.bills")
_Parsed = TypeVar("_Parsed")
NO_SUB_MERCHANT = frozenset({"", "0"})  # 特约商户号 of a row that is the merchant's own
__all__ = [
    "FUND_COLUMNS", "MAX_BILL_BYTES", "OPTIONAL_TRADE_COLUMNS", "TRADE_COLUMNS", "MalformedBillError",
    "WeChatBills", "parse_fund_flow_bill", "parse_trade_bill", "yuan_to_fen",
]  # fmt: skip

_INFLATE_STEP = 1 << 20
_MAX_RATIO = 200  # CSV bills compress about 5-20 to 1; zeros 1000 to 1
MAX_BILL_BYTES = 256 << 20  # a day of a very busy merchant; the download is streamed up to this
FETCH_ATTEMPTS = 2  # a bad hash or an expired URL: apply once more, then give up for this run


class WeChatBills:
    """Applies for and downloads one merchant account's bills with the client that signs for it
    (signing, breaker, observer): a direct merchant's own, a provider's own (`own_only`: its
    sub-merchants' rows are theirs), or a sub-merchant's (`sub_mchid`, through its provider's client)."""

    def __init__(
        self,
        client: WeChatPayClient,
        max_bytes: int = MAX_BILL_BYTES,
        download_timeout_s: float = 60.0,
        *,
        sub_mchid: str | None = None,
        own_only: bool = False,
    ) -> None:
        self._client = client
        self._max_bytes = max_bytes
        self._download_timeout_s = download_timeout_s  # a whole day's file: not an API call's 5 s
        self._sub_mchid = sub_mchid
        self._own_only = own_only

    def trade_bill(self, day: date) -> TradeBill | None:
        """Day D's ALL bill; None when WeChat has no statement (a day without trades)."""
        path = f"/v3/bill/tradebill?bill_date={day.isoformat()}&bill_type=ALL&tar_type=GZIP"
        if self._sub_mchid is not None:
            path += f"&sub_mchid={quote(self._sub_mchid, safe='')}"
        content = self._fetch("trade_bill", path)
        if content is None:
            return None
        rows = _parsed(day, parse_trade_bill, content)
        if self._own_only:  # the provider's own trades; each sub-merchant reconciles its own
            rows = [row for row in rows if row.sub_mchid in NO_SUB_MERCHANT]
        return TradeBill(content, _sha1(content), rows)

    def fund_flow_bill(self, day: date) -> FundBill | None:
        if self._sub_mchid is not None:
            content = self._sub_fund_flow(day)
        else:
            path = f"/v3/bill/fundflowbill?bill_date={day.isoformat()}&account_type=BASIC&tar_type=GZIP"
            content = self._fetch("fundflow_bill", path)
        if content is None:
            return None
        return FundBill(content, _sha1(content), _parsed(day, parse_fund_flow_bill, content))

    def _sub_fund_flow(self, day: date) -> bytes | None:
        assert self._sub_mchid is not None  # noqa: S101 - the caller checked

        def download(url: str) -> bytes:
            return self._client.download(url, self._max_bytes, self._download_timeout_s)

        def plain(decrypted: bytes, expected: str) -> bytes | None:
            content = _gunzip(decrypted, self._max_bytes)
            return content if _sha1(content) == expected else None

        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                return fetch_sub_fund_flow(self._client, self._sub_mchid, day, download, plain)
            except ProviderRejectedError as error:
                if error.metadata.get("provider_code") == "INVALID_REQUEST" and attempt < FETCH_ATTEMPTS:
                    continue  # a URL expired between apply and download: apply again
                raise
        return None  # unreachable: the last attempt returns or raises

    def _fetch(self, operation: str, apply_path: str) -> bytes | None:
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                applied = self._client.signed_get(operation, apply_path)
            except ProviderRejectedError as error:
                if error.metadata.get("provider_code") == "NO_STATEMENT_EXIST":
                    return None
                raise  # STATEMENT_CREATING and the rest: the caller decides
            try:
                raw = self._client.download(
                    str(applied.get("download_url", "")), self._max_bytes, self._download_timeout_s
                )
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


def _parsed(day: date, parse: Callable[[bytes], _Parsed], content: bytes) -> _Parsed:
    """A bill that does not parse is a provider failure of its own (`BILL_MALFORMED`): the day backs
    off and is asked for again later, like an unavailable provider, and the other days go on."""
    try:
        return parse(content)
    except MalformedBillError as exc:
        error = exc
    except (ValueError, ArithmeticError) as exc:  # anything the strict parsing below did not foresee
        error = MalformedBillError(f"{type(exc).__name__}: {exc}")
    raise unavailable(
        f"the bill of {day.isoformat()} is malformed at {error}",
        provider_code=BILL_MALFORMED,
        line="" if error.line is None else str(error.line),
        column=error.column,
    ) from error


def _sha1(content: bytes) -> str:
    return hashlib.sha1(content).hexdigest()  # noqa: S324 - WeChat's documented bill digest


def _gunzip(raw: bytes, max_bytes: int) -> bytes:
    if not raw.startswith(b"\x1f\x8b"):
        return raw  # asked for GZIP, but a plain file is readable as it is
    # Step by step into one buffer: never more than the cap (plus a step) in memory, and a file that
    # inflates far beyond what any CSV does (a gzip bomb) is refused before it fills the cap.
    decompressor, content, pending = zlib.decompressobj(16 + zlib.MAX_WBITS), bytearray(), raw
    try:
        while pending and not decompressor.eof:
            content += decompressor.decompress(pending, _INFLATE_STEP)
            pending = decompressor.unconsumed_tail
            used = len(raw) - len(pending) - len(decompressor.unused_data)
            if len(content) > max_bytes or len(content) > _MAX_RATIO * max(used, 1) + _INFLATE_STEP:
                raise unavailable(
                    "bill file is too large, or inflates like no bill", provider_code="BILL_CORRUPT"
                )
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise unavailable("bill file is not valid gzip", provider_code="BILL_CORRUPT") from exc
    if not decompressor.eof:
        raise unavailable("bill file is truncated", provider_code="BILL_CORRUPT")
    return bytes(content)
