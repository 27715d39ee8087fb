"""Control calls for scenarios the plain control API cannot stage (issue 13's `orderpay sandbox trigger`).

`POST /sandbox/v1/dev/orders/{out_trade_no}/late-pay`: the race where the payer's payment completes
just as the merchant closed the order. A CLOSED trade becomes paid and TRANSACTION.SUCCESS is sent, as
WeChat does when its side of the close lost. Loopback dev tool: no authentication, like the rest.
"""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.api.errors import ApiError
from sandbox.control.routes import PREFIX
from sandbox.engine.world import WORLD


async def late_pay(request: web.Request) -> web.Response:
    out_trade_no = request.match_info["out_trade_no"]
    query = request.query
    sandbox = request.app[WORLD].find(out_trade_no, query.get("mchid"), query.get("sub_mchid"))
    trade = sandbox.backend.trade(out_trade_no)
    if trade.trade_state != "CLOSED":
        raise ApiError(
            400, "INVALID_REQUEST", f"late-pay needs a CLOSED order; this one is {trade.trade_state}"
        )
    trade.trade_state, trade.closed_at = "NOTPAY", None  # the close lost the race
    sandbox.simulator.pay(out_trade_no)
    body = sandbox.backend.describe(out_trade_no)
    return web.json_response(body, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/dev/orders/{{out_trade_no}}/late-pay", late_pay)
