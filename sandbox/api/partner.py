"""The service-provider (服务商) payment endpoints, `/v3/pay/partner/transactions/...`.

The provider signs with its own keys (the middleware authenticates `sp_mchid`), names the sub-merchant
in every call, and the trade lives in that sub-merchant's book (sandbox/engine/world.py). Refunds and
bills share the direct endpoints with a `sub_mchid` (routes.py, bills/routes.py).
"""

from __future__ import annotations

from aiohttp import web

from sandbox.api import errors
from sandbox.api.errors import ApiError
from sandbox.api.routes import AUTH, BOOK, answer_prepay
from sandbox.api.validation import CHANNELS, parse_json_object, parse_partner_prepay
from sandbox.api.wire import signed
from sandbox.engine.state import Sandbox
from sandbox.engine.world import WORLD

PARTNER = "/v3/pay/partner/transactions"


def _provider(request: web.Request, sp_mchid: str) -> Sandbox:
    account = request[BOOK]
    if sp_mchid != request[AUTH].mchid:
        raise errors.sign_error("http header中的mchid与sp_mchid不匹配")
    if account.kind != "provider":
        raise ApiError(403, "NO_AUTH", "商户号无服务商权限")
    return account


async def prepay(request: web.Request) -> web.StreamResponse:
    order = parse_partner_prepay(request.match_info["channel"], await request.read())
    provider = _provider(request, order.mchid)
    if order.appid not in provider.appids:
        raise ApiError(400, "APPID_MCHID_NOT_MATCH", "sp_appid和sp_mchid不匹配")
    world = request.app[WORLD]
    sub = world.sub_merchant(provider.mchid, order.sub_mchid or "")
    if order.sub_appid is not None and order.sub_appid not in sub.appids:
        raise ApiError(400, "APPID_MCHID_NOT_MATCH", "sub_appid和sub_mchid不匹配")
    world.bind_openid(order.payer_openid, order.appid)
    if order.sub_appid is not None:
        world.bind_openid(order.payer_sub_openid, order.sub_appid)
    return await answer_prepay(request, sub, order)


def _query_ids(request: web.Request) -> Sandbox:
    for name in ("sp_mchid", "sub_mchid"):
        if not request.query.get(name):
            raise errors.param_error(name, "此字段为必填项", "", location="uri_template")
    provider = _provider(request, request.query["sp_mchid"])
    return request.app[WORLD].sub_merchant(provider.mchid, request.query["sub_mchid"])


async def query_by_out_trade_no(request: web.Request) -> web.StreamResponse:
    sub = _query_ids(request)
    trade = sub.backend.trade(request.match_info["out_trade_no"])
    return signed(sub, request, 200, trade.to_wire())


async def query_by_transaction_id(request: web.Request) -> web.StreamResponse:
    sub = _query_ids(request)
    trade = sub.backend.trade_by_transaction_id(request.match_info["transaction_id"])
    return signed(sub, request, 200, trade.to_wire())


async def close(request: web.Request) -> web.StreamResponse:
    body = parse_json_object(await request.read())
    ids = {name: body.get(name) for name in ("sp_mchid", "sub_mchid")}
    for name, value in ids.items():
        if not isinstance(value, str) or not value:
            raise errors.param_error(f"/{name}", "此字段为必填项", value)
    provider = _provider(request, str(ids["sp_mchid"]))
    sub = request.app[WORLD].sub_merchant(provider.mchid, str(ids["sub_mchid"]))
    sub.backend.close(request.match_info["out_trade_no"])
    return signed(sub, request, 204, None)


def add_routes(app: web.Application) -> None:
    channels = "|".join(CHANNELS)
    app.router.add_post(f"{PARTNER}/{{channel:{channels}}}", prepay)
    app.router.add_get(f"{PARTNER}/out-trade-no/{{out_trade_no}}", query_by_out_trade_no)
    app.router.add_get(f"{PARTNER}/id/{{transaction_id}}", query_by_transaction_id)
    app.router.add_post(f"{PARTNER}/out-trade-no/{{out_trade_no}}/close", close)
