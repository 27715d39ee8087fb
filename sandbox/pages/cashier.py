"""The cashier page: what a payer sees after scanning `code_url` or opening `h5_url`.

`weixin://wxpay/bizpayurl?pr=<token>` (NATIVE) maps to `GET /sandbox/cashier/<token>`; H5's `h5_url`
points there directly. Pay settles the order exactly like the control API; Cancel leaves it unpaid.

Post-redirect-get: Pay and Cancel answer 303 to the page itself, so a refresh shows the state again
instead of resubmitting the form. Each state looks different (awaiting, paid, refunded, closed,
expired); once the order is final both buttons are disabled. A NATIVE page carries a QR code of its
own URL, so a phone on the same network can open it, as a payer would scan the merchant's code.
"""

from __future__ import annotations

import contextlib
import html
from datetime import datetime
from importlib import resources
from string import Template

import segno
from aiohttp import web

from sandbox.api.errors import ApiError
from sandbox.engine.models import CHINA, TRADE_TYPES, Trade
from sandbox.engine.state import Sandbox
from sandbox.engine.world import WORLD

# state -> (css class, label). Chinese first, as WeChat's own page; English for everyone else.
STATE_LABELS = {
    "awaiting": ("awaiting", "待支付 Awaiting payment"),
    "paid": ("paid", "支付成功 Paid"),
    "refunded": ("refunded", "已转入退款 Paid, then refunded"),
    "closed": ("closed", "订单已关闭 Closed by the merchant"),
    "expired": ("expired", "订单已过期 Expired"),
}
CANCELLED = "已取消支付 Cancelled — the order stays unpaid; you can still pay"
CHANNELS = {
    "NATIVE": "扫码支付 QR code (NATIVE)",
    "JSAPI": "公众号支付 In WeChat (JSAPI)",
    "MWEB": "H5 支付 Mobile browser (H5)",
    "APP": "App 支付 In an app (APP)",
}
NOTES = {"cancelled": CANCELLED}


def state_of(trade: Trade) -> str:
    """awaiting | paid | refunded | closed | expired: what the payer needs to know, not the wire code."""
    if trade.trade_state == "SUCCESS":
        return "paid"
    if trade.trade_state == "REFUND":
        return "refunded"
    if trade.trade_state == "CLOSED":
        # The backend closes an unpaid trade at exactly its expiry time; a merchant's close is another time.
        expired = trade.closed_at is not None and trade.closed_at >= trade.expires_at
        return "expired" if expired else "closed"
    return "awaiting"


def _template() -> Template:
    text = resources.files("sandbox.pages").joinpath("templates/cashier.html").read_text(encoding="utf-8")
    return Template(text)


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def china_time(when: datetime) -> str:
    return when.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") + " (UTC+8)"


def qr_svg(url: str) -> str:
    """The URL as an inline SVG QR code (segno: pure Python, no image files, nothing fetched)."""
    code = segno.make(url, error="m", micro=False)
    return str(code.svg_inline(scale=4, border=2, dark="#111", light="#fff", title=url, omitsize=True))


def render(trade: Trade, merchant: str, page_url: str, *, note: str | None = None) -> str:
    state = state_of(trade)
    css, label = STATE_LABELS[state]
    token = trade.cashier_token
    trade_type = TRADE_TYPES[trade.request.channel]
    final = state != "awaiting"
    if state == "paid" and trade.success_time is not None:
        detail = f"{china_time(trade.success_time)} · {trade.transaction_id}"
    elif state == "expired":
        detail = f"the pay window ended {china_time(trade.expires_at)}"
    elif state == "awaiting":
        detail = f"pay by {china_time(trade.expires_at)}"
    else:
        detail = ""
    values = {
        "merchant": merchant,
        "amount_yuan": yuan(trade.total),
        "description": trade.request.description,
        "out_trade_no": trade.out_trade_no,
        "trade_type": CHANNELS.get(trade_type, trade_type),
        "state_text": label,
        "state_detail": detail,
        "note": note or "",
        "pay_action": f"/sandbox/cashier/{token}/pay",
        "cancel_action": f"/sandbox/cashier/{token}/cancel",
        "page_url": page_url,
    }
    escaped = {name: html.escape(value) for name, value in values.items()}
    escaped["state_class"] = css
    escaped["note_hidden"] = "" if note else "hidden"
    escaped["pay_disabled"] = "disabled" if final else ""
    escaped["cancel_disabled"] = "disabled" if final or note == CANCELLED else ""
    show_qr = trade_type == "NATIVE" and not final
    escaped["qr_hidden"] = "" if show_qr else "hidden"
    escaped["qr_svg"] = qr_svg(page_url) if show_qr else ""
    return _template().substitute(escaped)


def _page(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _book_and_trade(request: web.Request) -> tuple[Sandbox, Trade]:
    try:
        return request.app[WORLD].by_token(request.match_info["token"])
    except ApiError as exc:
        raise web.HTTPNotFound(text="unknown or expired payment link") from exc


def _trade(request: web.Request) -> Trade:
    return _book_and_trade(request)[1]


def _merchant(request: web.Request) -> str:
    book, trade = _book_and_trade(request)
    sub = f" / 特约商户 {trade.request.sub_mchid}" if trade.request.sub_mchid else ""
    return f"Sandbox merchant 沙箱商户 {book.mchid}{sub}"


def _page_url(request: web.Request) -> str:
    # As the browser asked for it (its Host header), so a phone on the same network gets a URL it can open.
    return str(request.url.with_query(None).with_fragment(None))


async def show(request: web.Request) -> web.Response:
    trade = _trade(request)
    note = NOTES.get(request.query.get("note", "")) if state_of(trade) == "awaiting" else None
    return _page(render(trade, _merchant(request), _page_url(request), note=note))


def _back_to_page(request: web.Request, note: str | None = None) -> web.HTTPSeeOther:
    target = request.url.with_path(f"/sandbox/cashier/{request.match_info['token']}").with_query(None)
    return web.HTTPSeeOther(str(target.with_query({"note": note}) if note else target))


async def pay(request: web.Request) -> web.Response:
    book, trade = _book_and_trade(request)
    with contextlib.suppress(ApiError):  # closed or expired: the page says so, with the buttons disabled
        book.simulator.pay(trade.out_trade_no)
    raise _back_to_page(request)


async def cancel(request: web.Request) -> web.Response:
    _trade(request)
    raise _back_to_page(request, "cancelled")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sandbox/cashier/{token}", show)
    app.router.add_post("/sandbox/cashier/{token}/pay", pay)
    app.router.add_post("/sandbox/cashier/{token}/cancel", cancel)
