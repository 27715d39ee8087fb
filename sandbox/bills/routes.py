"""Bill endpoints (`/v3/bill/tradebill`, `/v3/bill/fundflowbill`, `/v3/bill/sub-merchant-fundflowbill`,
`/v3/billdownload/file`) and the clock control (`/sandbox/v1/clock`). Every bill is one account's: a
direct merchant's own, or (a provider naming `sub_mchid`) one sub-merchant's.

Applying answers signed JSON `{hash_type, hash_value, download_url}`; the download answer is *not*
signed (WeChat signs none on that path) and the hash is the SHA1 of the uncompressed bytes. A download
token lives 30 s of sandbox time; after that the download is `INVALID_REQUEST` and the caller re-applies.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web

from sandbox.api import errors
from sandbox.api.errors import ApiError
from sandbox.api.routes import BOOK, refund_book
from sandbox.api.wire import signed
from sandbox.bills.render import (
    BILL_TYPES,
    BillUnavailable,
    Layout,
    check_available,
    render_fundflow_bill,
    render_trade_bill,
    trade_rows,
)
from sandbox.bills.sealed import ALGORITHMS, seal
from sandbox.config import ConfigError
from sandbox.engine.clock import ClockError
from sandbox.engine.state import SANDBOX, Sandbox
from sandbox.engine.world import WORLD, World

TOKEN_TTL = timedelta(seconds=30)
CLOCK_PATH = "/sandbox/v1/clock"


@dataclass(frozen=True)
class _File:
    content: bytes  # uncompressed; or, `sealed`, the bytes to serve as they are
    gzip: bool
    expires_at: datetime
    sealed: bool = False


class BillDesk:
    """Download tokens handed out by the apply calls (in memory, like everything in the sandbox)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}

    def issue(self, content: bytes, *, compressed: bool, now: datetime, sealed: bool = False) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._files = {k: f for k, f in self._files.items() if f.expires_at > now}  # drop stale ones
            self._files[token] = _File(content, compressed, now + TOKEN_TTL, sealed)
        return token

    def take(self, token: str, now: datetime) -> _File:
        with self._lock:
            found = self._files.get(token)
        if found is None or found.expires_at <= now:
            raise errors.invalid_request("下载链接已过期或不存在，请重新申请账单")
        return found


BILL_DESK = web.AppKey("bill_desk", BillDesk)


def _bill_date(request: web.Request, sandbox: Sandbox) -> date:
    raw = request.query.get("bill_date", "")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise errors.param_error("bill_date", "格式应为yyyy-MM-DD", raw, location="query") from None
    try:
        check_available(day, sandbox.clock())
    except BillUnavailable as exc:
        raise ApiError(400, exc.code, exc.message) from None
    return day


def _compressed(request: web.Request) -> bool:
    tar_type = request.query.get("tar_type")
    if tar_type not in {None, "GZIP"}:
        raise errors.param_error("tar_type", "只支持GZIP", tar_type, location="query")
    return tar_type == "GZIP"


def _layout(sandbox: Sandbox) -> Layout:
    config = sandbox.settings.config
    return Layout(bom=config.bill_bom, crlf=config.bill_crlf)


def _answer(request: web.Request, sandbox: Sandbox, content: bytes, compressed: bool) -> web.Response:
    token = request.app[BILL_DESK].issue(content, compressed=compressed, now=sandbox.clock())
    digest = hashlib.sha1(content).hexdigest()  # noqa: S324 - WeChat's documented bill hash
    if sandbox.settings.config.bill_hash_mismatch:
        digest = hashlib.sha1(content + b"tampered").hexdigest()  # noqa: S324
    url = f"{request.scheme}://{request.host}/v3/billdownload/file?token={token}"
    return signed(sandbox, request, 200, {"hash_type": "SHA1", "hash_value": digest, "download_url": url})


def _trade_bill_books(request: web.Request) -> list[Sandbox]:
    """A provider's `sub_mchid` narrows its bill to that sub-merchant; without, the bill holds the
    provider's own trades and every sub-merchant's (特约商户号 says whose)."""
    account = request[BOOK]
    sub_mchid = request.query.get("sub_mchid")
    if sub_mchid is not None:
        return [refund_book(request, sub_mchid)]
    world: World = request.app[WORLD]
    return [book for book in world if book.mchid == account.mchid]


async def trade_bill(request: web.Request) -> web.StreamResponse:
    books = _trade_bill_books(request)
    sandbox = books[0]
    bill_type = request.query.get("bill_type", "ALL")
    if bill_type not in BILL_TYPES:
        raise errors.param_error("bill_type", "只支持ALL、SUCCESS、REFUND", bill_type, location="query")
    compressed = _compressed(request)
    day = _bill_date(request, sandbox)
    rows = []
    for each in books:
        trades, refunds = each.backend.snapshot()
        rows += trade_rows(trades, refunds, day, each.settings.faults_for)
    try:
        content = render_trade_bill(rows, bill_type, _layout(sandbox))
    except BillUnavailable as exc:
        raise ApiError(400, exc.code, exc.message) from None
    return _answer(request, sandbox, content, compressed)


def _fund_flow_content(request: web.Request, sandbox: Sandbox) -> tuple[bytes, bool]:
    """`sandbox`'s basic account on the day asked for: (file, whether gzip was asked)."""
    account = request.query.get("account_type", "BASIC")
    if account not in {"BASIC", "OPERATION", "FEES"}:
        raise errors.param_error("account_type", "只支持BASIC、OPERATION、FEES", account, location="query")
    compressed = _compressed(request)
    day = _bill_date(request, sandbox)
    if account != "BASIC":  # the sandbox moves money through the basic account only
        raise ApiError(400, "NO_STATEMENT_EXIST", "账单文件不存在")
    trades, refunds = sandbox.backend.snapshot()
    try:
        content = render_fundflow_bill(trades, refunds, day, sandbox.settings.faults_for, _layout(sandbox))
    except BillUnavailable as exc:
        raise ApiError(400, exc.code, exc.message) from None
    return content, compressed


async def fundflow_bill(request: web.Request) -> web.StreamResponse:
    sandbox = request[BOOK]  # the account's own basic account; a sub-merchant's: the route below
    content, compressed = _fund_flow_content(request, sandbox)
    return _answer(request, sandbox, content, compressed)


async def sub_merchant_fundflow_bill(request: web.Request) -> web.StreamResponse:
    provider = request[BOOK]
    sub_mchid = request.query.get("sub_mchid")
    if not sub_mchid:
        raise errors.param_error("sub_mchid", "此字段为必填项", sub_mchid, location="query")
    algorithm = request.query.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise errors.param_error("algorithm", "只支持AEAD_AES_256_GCM", algorithm, location="query")
    book = refund_book(request, sub_mchid)  # NO_AUTH / MCH_NOT_EXISTS as for the partner API
    content, compressed = _fund_flow_content(request, book)
    sealed, part = seal(provider, content, compressed=compressed)
    token = request.app[BILL_DESK].issue(sealed, compressed=False, now=provider.clock(), sealed=True)
    url = f"{request.scheme}://{request.host}/v3/billdownload/file?token={token}"
    listed = {**part, "bill_sequence": 1, "download_url": url}
    body = {"download_bill_count": 1, "download_bill_list": [listed]}
    return signed(provider, request, 200, body)


async def download(request: web.Request) -> web.StreamResponse:
    """The one answer the gateway does not sign: the caller checks the file against the applied hash."""
    sandbox = request[BOOK]
    found = request.app[BILL_DESK].take(request.query.get("token", ""), sandbox.clock())
    if found.sealed:
        return web.Response(body=found.content, headers={"Content-Type": "application/octet-stream"})
    if found.gzip:
        body = gzip.compress(found.content, mtime=0)
        return web.Response(body=body, headers={"Content-Type": "application/x-gzip"})
    return web.Response(body=found.content, headers={"Content-Type": "text/plain; charset=utf-8"})


# --- the clock --------------------------------------------------------------------------------------


def _clock_json(sandbox: Sandbox) -> dict[str, Any]:
    return {"now": sandbox.clock().isoformat(), "offset_s": sandbox.clock.offset.total_seconds()}


async def get_clock(request: web.Request) -> web.Response:
    return web.json_response(_clock_json(request.app[SANDBOX]))


async def move_clock(request: web.Request) -> web.Response:
    """`{"advance_s": N}` or `{"now": "<RFC 3339>"}`; forward only."""
    sandbox = request.app[SANDBOX]
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or len(body.keys() & {"advance_s", "now"}) != 1:
        raise ConfigError('send {"advance_s": N} or {"now": "<RFC 3339>"}')
    try:
        if "advance_s" in body:
            seconds = body["advance_s"]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ConfigError("advance_s must be a number of seconds")
            sandbox.clock.advance(float(seconds))
        else:
            sandbox.clock.set(datetime.fromisoformat(str(body["now"])))
    except (ClockError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    return web.json_response(_clock_json(sandbox), dumps=lambda v: json.dumps(v, ensure_ascii=False))


def add_routes(app: web.Application) -> None:
    app[BILL_DESK] = BillDesk()
    app.router.add_get("/v3/bill/tradebill", trade_bill)
    app.router.add_get("/v3/bill/fundflowbill", fundflow_bill)
    app.router.add_get("/v3/bill/sub-merchant-fundflowbill", sub_merchant_fundflow_bill)
    app.router.add_get("/v3/billdownload/file", download)
    app.router.add_get(CLOCK_PATH, get_clock)
    app.router.add_post(CLOCK_PATH, move_clock)
