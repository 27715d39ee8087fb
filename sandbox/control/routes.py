"""The control API under `/sandbox/v1/`: reset, config, pay, per-order faults, refund outcome,
notification log, state dump. No authentication: bind the sandbox to loopback.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox.api.errors import ApiError
from sandbox.config import ConfigError, config_to_json
from sandbox.engine.state import Sandbox
from sandbox.engine.world import WORLD, World, book_for

PREFIX = "/sandbox/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


@web.middleware
async def control_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Control answers are plain JSON: `{"code", "message"}` with the status of the failure."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return _json(exc.body(), status=exc.status)
    except ConfigError as exc:
        return _json({"code": "BAD_CONFIG", "message": str(exc)}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise ConfigError("body must be a JSON object") from exc
    if not isinstance(data, dict):
        raise ConfigError("body must be a JSON object")
    return data


def _order_book(request: web.Request) -> Sandbox:
    """The account holding the order: `?mchid=` (+ `&sub_mchid=`) when two accounts share the number."""
    query = request.query
    return request.app[WORLD].find(
        request.match_info["out_trade_no"], query.get("mchid"), query.get("sub_mchid")
    )


def _refund_book(request: web.Request) -> Sandbox:
    world, out_refund_no = request.app[WORLD], request.match_info["out_refund_no"]
    if "mchid" in request.query:
        return book_for(request)
    holders = [book for book in world if book.backend.has_refund(out_refund_no)]
    return holders[0] if len(holders) == 1 else world.primary


async def accounts(request: web.Request) -> web.Response:
    return _json({"accounts": request.app[WORLD].describe()})


async def reset(request: web.Request) -> web.Response:
    await request.app[WORLD].reset()
    return _json({"reset": True})


async def get_config(request: web.Request) -> web.Response:
    return _json(config_to_json(book_for(request).settings.config))


async def put_config(request: web.Request) -> web.Response:
    config = book_for(request).settings.update(await _body(request))
    return _json(config_to_json(config))


async def get_order(request: web.Request) -> web.Response:
    return _json(_order_book(request).backend.describe(request.match_info["out_trade_no"]))


async def pay_order(request: web.Request) -> web.Response:
    body = await _body(request)
    openid = body.get("payer_openid")
    sandbox = _order_book(request)
    sandbox.simulator.pay(request.match_info["out_trade_no"], openid if isinstance(openid, str) else None)
    return _json(sandbox.backend.describe(request.match_info["out_trade_no"]))


async def set_order_faults(request: web.Request) -> web.Response:
    settings = _order_book(request).settings
    faults = settings.set_order_faults(request.match_info["out_trade_no"], await _body(request))
    return _json({"out_trade_no": request.match_info["out_trade_no"], "faults": faults.__dict__})


async def settle_refund(request: web.Request) -> web.Response:
    status = (await _body(request)).get("status", "SUCCESS")
    if status not in {"SUCCESS", "ABNORMAL", "CLOSED"}:
        raise ConfigError("status must be SUCCESS, ABNORMAL or CLOSED")
    refund = _refund_book(request).simulator.settle_refund(request.match_info["out_refund_no"], status)
    return _json(refund.to_wire())


async def notifications(request: web.Request) -> web.Response:
    """Every account's attempts (each names its mchid and sub_mchid); `?mchid=` narrows to one."""
    world: World = request.app[WORLD]
    books = [book_for(request)] if "mchid" in request.query else list(world)
    attempts = [{**a, "mchid": b.mchid, "sub_mchid": b.sub_mchid} for b in books for a in b.notifier.log()]
    attempts.sort(key=lambda a: str(a.get("sent_at") or ""))
    return _json({"attempts": attempts, "in_flight": sum(b.notifier.in_flight for b in books)})


async def resend(request: web.Request) -> web.Response:
    notification_id = request.match_info["notification_id"]
    world: World = request.app[WORLD]
    for notifier in (book.notifier for book in world):
        notification = notifier.notifications.get(notification_id)
        if notification is not None:
            break
    else:
        raise ApiError(404, "RESOURCE_NOT_EXISTS", "no such notification")
    notifier.submit(notification)
    return _json({"resent": notification.id}, status=202)


async def state(request: web.Request) -> web.Response:
    sandbox = book_for(request)
    return _json(
        {
            **sandbox.backend.dump(),
            "order_faults": sandbox.settings.order_faults(),
            "config": config_to_json(sandbox.settings.config),
            "notification_attempts": len(sandbox.notifier.attempts),
        }
    )


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post(f"{PREFIX}/reset", reset)
    router.add_get(f"{PREFIX}/accounts", accounts)
    router.add_get(f"{PREFIX}/config", get_config)
    router.add_put(f"{PREFIX}/config", put_config)
    router.add_get(f"{PREFIX}/orders/{{out_trade_no}}", get_order)
    router.add_post(f"{PREFIX}/orders/{{out_trade_no}}/pay", pay_order)
    router.add_post(f"{PREFIX}/orders/{{out_trade_no}}/faults", set_order_faults)
    router.add_post(f"{PREFIX}/refunds/{{out_refund_no}}/settle", settle_refund)
    router.add_get(f"{PREFIX}/notifications", notifications)
    router.add_post(f"{PREFIX}/notifications/{{notification_id}}/resend", resend)
    router.add_get(f"{PREFIX}/state", state)
