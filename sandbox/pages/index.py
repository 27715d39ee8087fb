"""`GET /`: what the sandbox is, its recent payments with their cashier links, and its endpoints.

`orderpay dev` prints the sandbox's base URL; opening it should explain itself instead of a bare 404.
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template

from aiohttp import web

from sandbox.engine.models import TRADE_TYPES, Trade
from sandbox.engine.world import WORLD
from sandbox.pages.cashier import STATE_LABELS, state_of, yuan

RECENT = 20


def _template() -> Template:
    return Template(
        resources.files("sandbox.pages").joinpath("templates/index.html").read_text(encoding="utf-8")
    )


def trades_table(trades: list[Trade]) -> str:
    if not trades:
        return "<p>None yet: create one with <code>orderpay demo --manual</code>.</p>"
    rows = []
    for trade in trades:
        link = f"/sandbox/cashier/{html.escape(trade.cashier_token)}"
        rows.append(
            f'<tr><td class="mono">{html.escape(trade.out_trade_no)}</td>'
            f"<td>{html.escape(trade.request.description)}</td>"
            f'<td class="n">¥{yuan(trade.total)}</td><td>{TRADE_TYPES[trade.request.channel]}</td>'
            f"<td>{html.escape(STATE_LABELS[state_of(trade)][1])}</td>"
            f'<td><a href="{link}">cashier page</a></td></tr>'
        )
    head = "<tr><th>out_trade_no</th><th>item</th><th>amount</th><th>channel</th><th>state</th><th></th></tr>"
    return f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'


async def index(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    sandbox = world.primary
    everyone = [trade for book in world for trade in book.backend.recent_trades(RECENT)]
    recent = sorted(everyone, key=lambda trade: trade.created_at, reverse=True)[:RECENT]
    page = _template().substitute(
        mchid=html.escape(sandbox.credentials.mchid),
        appid=html.escape(sandbox.credentials.appid),
        trades=trades_table(recent),
    )
    return web.Response(text=page, content_type="text/html", charset="utf-8")


async def readme(_request: web.Request) -> web.Response:
    """The sandbox's own README (how to drive it), as plain text: the index links here."""
    text = resources.files("sandbox").joinpath("README.md").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/README.md", readme)
