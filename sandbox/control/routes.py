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
from sandbox.engine.state import SANDBOX

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


async def reset(request: web.Request) -> web.Response:
    await request.app[SANDBOX].reset()
    return _json({"reset": True})


async def get_config(request: web.Request) -> web.Response:
    return _json(config_to_json(request.app[SANDBOX].settings.config))


async def put_config(request: web.Request) -> web.Response:
    config = request.app[SANDBOX].settings.update(await _body(request))
    return _json(config_to_json(config))


async def get_order(request: web.Request) -> web.Response:
    return _json(request.app[SANDBOX].backend.describe(request.match_info["out_trade_no"]))


async def pay_order(request: web.Request) -> web.Response:
    body = await _body(request)
    openid = body.get("payer_openid")
    sandbox = request.app[SANDBOX]
    sandbox.simulator.pay(request.match_info["out_trade_no"], openid if isinstance(openid, str) else None)
    return _json(sandbox.backend.describe(request.match_info["out_trade_no"]))


async def set_order_faults(request: web.Request) -> web.Response:
    settings = request.app[SANDBOX].settings
    faults = settings.set_order_faults(request.match_info["out_trade_no"], await _body(request))
    return _json({"out_trade_no": request.match_info["out_trade_no"], "faults": faults.__dict__})


async def settle_refund(request: web.Request) -> web.Response:
    status = (await _body(request)).get("status", "SUCCESS")
    if status not in {"SUCCESS", "ABNORMAL", "CLOSED"}:
        raise ConfigError("status must be SUCCESS, ABNORMAL or CLOSED")
    refund = request.app[SANDBOX].simulator.settle_refund(request.match_info["out_refund_no"], status)
    return _json(refund.to_wire())


async def notifications(request: web.Request) -> web.Response:
    notifier = request.app[SANDBOX].notifier
    return _json({"attempts": notifier.log(), "in_flight": notifier.in_flight})


async def resend(request: web.Request) -> web.Response:
    notifier = request.app[SANDBOX].notifier
    notification = notifier.notifications.get(request.match_info["notification_id"])
    if notification is None:
        raise ApiError(404, "RESOURCE_NOT_EXISTS", "no such notification")
    notifier.submit(notification)
    return _json({"resent": notification.id}, status=202)


async def state(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
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
    router.add_get(f"{PREFIX}/config", get_config)
    router.add_put(f"{PREFIX}/config", put_config)
    router.add_get(f"{PREFIX}/orders/{{out_trade_no}}", get_order)
    router.add_post(f"{PREFIX}/orders/{{out_trade_no}}/pay", pay_order)
    router.add_post(f"{PREFIX}/orders/{{out_trade_no}}/faults", set_order_faults)
    router.add_post(f"{PREFIX}/refunds/{{out_refund_no}}/settle", settle_refund)
    router.add_get(f"{PREFIX}/notifications", notifications)
    router.add_post(f"{PREFIX}/notifications/{{notification_id}}/resend", resend)
    router.add_get(f"{PREFIX}/state", state)
