"""The cashier page: what a payer sees after scanning `code_url` or opening `h5_url` (SPEC §6).

`weixin://wxpay/bizpayurl?pr=<token>` (NATIVE) maps to `GET /sandbox/cashier/<token>`; H5's `h5_url`
points there directly. Pay settles the order exactly like the control API; Cancel leaves it unpaid.
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template

from aiohttp import web

from sandbox.errors import ApiError
from sandbox.models import TRADE_STATE_DESC, TRADE_TYPES, Trade
from sandbox.state import SANDBOX

_STATE_TEXT = {**TRADE_STATE_DESC, "SUCCESS": "支付成功 Paid", "NOTPAY": "待支付 Awaiting payment"}


def _template() -> Template:
    text = resources.files("sandbox").joinpath("templates/cashier.html").read_text(encoding="utf-8")
    return Template(text)


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def render(trade: Trade, merchant: str, *, note: str | None = None) -> str:
    token = trade.cashier_token
    values = {
        "merchant": merchant,
        "amount_yuan": yuan(trade.total),
        "description": trade.request.description,
        "out_trade_no": trade.out_trade_no,
        "trade_type": TRADE_TYPES[trade.request.channel],
        "state_text": note or _STATE_TEXT[trade.trade_state],
        "pay_action": f"/sandbox/cashier/{token}/pay",
        "cancel_action": f"/sandbox/cashier/{token}/cancel",
    }
    escaped = {name: html.escape(value) for name, value in values.items()}
    escaped["actions_hidden"] = "" if trade.trade_state == "NOTPAY" and note is None else "hidden"
    return _template().substitute(escaped)


def _page(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _trade(request: web.Request) -> Trade:
    try:
        return request.app[SANDBOX].backend.trade_by_token(request.match_info["token"])
    except ApiError as exc:
        raise web.HTTPNotFound(text="unknown or expired payment link") from exc


def _merchant(request: web.Request) -> str:
    return f"Sandbox merchant {request.app[SANDBOX].credentials.mchid}"


async def show(request: web.Request) -> web.Response:
    return _page(render(_trade(request), _merchant(request)))


async def pay(request: web.Request) -> web.Response:
    trade = _trade(request)
    try:
        trade, _ = request.app[SANDBOX].simulator.pay(trade.out_trade_no)
    except ApiError as exc:
        return _page(render(trade, _merchant(request), note=exc.message), status=409)
    return _page(render(trade, _merchant(request)))


async def cancel(request: web.Request) -> web.Response:
    trade = _trade(request)
    note = "已取消支付 Cancelled (the order stays unpaid)" if trade.trade_state == "NOTPAY" else None
    return _page(render(trade, _merchant(request), note=note))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sandbox/cashier/{token}", show)
    app.router.add_post("/sandbox/cashier/{token}/pay", pay)
    app.router.add_post("/sandbox/cashier/{token}/cancel", cancel)
