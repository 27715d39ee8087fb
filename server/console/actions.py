"""Console actions (POST): each form carries a reason and a ticked confirmation, runs one operations
use case as the signed-in admin, and answers with a page that says what happened."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Mapping

from aiohttp import web

from server.console.deps import deps, render, session_of
from server.domain.errors import DomainError
from server.domain.operations import Resolution
from server.domain.provider import AbnormalRefundRoute, ResolveAbnormal
from server.service.context import Caller
from server.service.operations import JobKind, OperationResult, OperationsService

ERROR_STATUS = {"VERSION_CONFLICT": 409, "INVALID_STATE_TRANSITION": 409, "INVALID_ARGUMENT": 400}
Run = Callable[[OperationsService, Caller, str], OperationResult]
ROUTES = {route.value: route for route in AbnormalRefundRoute}


def _field(form: Mapping[str, object], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _act(request: web.Request, back: str, run: Run) -> web.Response:
    form = await request.post()
    session = session_of(request)
    caller = Caller(actor=session.actor, request_id=f"console-{uuid.uuid4().hex}")
    context: dict[str, object] = {"back": back, "request_id": caller.request_id, "title": "Result"}
    if _field(form, "confirm") != "yes":
        context.update(
            error="NOT_CONFIRMED", message="Tick the confirmation box to go ahead; nothing was done."
        )
        return render(request, "result.html", context, status=400)
    reason = _field(form, "reason")
    try:
        result = await asyncio.to_thread(run, deps(request).operations, caller, reason)
    except DomainError as error:
        context.update(error=error.reason, message=error.message)
        return render(request, "result.html", context, status=ERROR_STATUS.get(error.reason, 422))
    context.update(result=result)
    return render(request, "result.html", context)


def _version(form: Mapping[str, object]) -> int:
    """The version the operator was looking at; anything but a small whole number means "current"
    is not what they saw, so it is refused rather than a 500 (the audit's INFO: `abc`)."""
    text = _field(form, "expected_version") or "0"
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise web.HTTPBadRequest(text="expected_version must be a whole number")
    return int(text)


async def resolve(request: web.Request) -> web.Response:
    form = await request.post()
    order_id = _field(form, "order_id")
    resolution = Resolution.ACCEPT if _field(form, "resolution") == "ACCEPT" else Resolution.REFUND
    version = _version(form)
    return await _act(
        request,
        f"/orders/{order_id}",
        lambda ops, caller, reason: ops.resolve_held(order_id, resolution, reason, version, caller),
    )


async def retry_fulfilment(request: web.Request) -> web.Response:
    form = await request.post()
    order_id = _field(form, "order_id")
    version = _version(form)
    return await _act(
        request,
        f"/orders/{order_id}",
        lambda ops, caller, reason: ops.retry_fulfilment(order_id, reason, version, caller),
    )


async def replay(request: web.Request) -> web.Response:
    form = await request.post()
    notification_id = _field(form, "notification_id")
    return await _act(
        request,
        "/notifications",
        lambda ops, caller, reason: ops.replay_notification(notification_id, reason, caller),
    )


async def resolve_abnormal(request: web.Request) -> web.Response:
    """The console's `ops resolve-abnormal`: the same use case, the operator's note in the audit."""
    form = await request.post()
    route = ROUTES.get(_field(form, "route"))
    if route is None:
        raise web.HTTPBadRequest(text="route must be MERCHANT_BANK_CARD or USER_BANK_CARD")
    command = functools.partial(
        ResolveAbnormal,
        _field(form, "out_refund_no"),
        route,
        bank_type=_field(form, "bank_type"),
        bank_account=_field(form, "bank_account"),
        real_name=_field(form, "real_name"),
    )
    return await _act(
        request,
        f"/orders/{_field(form, 'order_id')}",
        lambda ops, caller, reason: ops.resolve_abnormal_refund(command(reason=reason), caller),
    )


async def resolve_recon(request: web.Request) -> web.Response:
    form = await request.post()
    text = _field(form, "exception_id")
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise web.HTTPBadRequest(text="exception_id must be a whole number")
    order_id = _field(form, "order_id")
    back = f"/orders/{order_id}" if order_id else "/attention#recon"
    return await _act(
        request, back, lambda ops, caller, reason: ops.resolve_recon_exception(int(text), reason, caller)
    )


async def job(request: web.Request) -> web.Response:
    form = await request.post()
    kind = JobKind.REFUND_POLL if _field(form, "kind") == JobKind.REFUND_POLL.value else JobKind.FULFILMENT
    key = _field(form, "key")
    verb = request.match_info["verb"]
    if verb not in {"retry", "revoke"}:
        raise web.HTTPNotFound
    if verb == "retry":
        return await _act(
            request, "/jobs", lambda ops, caller, reason: ops.retry_job(kind, key, reason, caller)
        )
    return await _act(request, "/jobs", lambda ops, caller, reason: ops.revoke_job(kind, key, reason, caller))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/actions/resolve", resolve)
    app.router.add_post("/actions/retry-fulfilment", retry_fulfilment)
    app.router.add_post("/actions/replay", replay)
    app.router.add_post("/actions/resolve-abnormal", resolve_abnormal)
    app.router.add_post("/actions/resolve-recon", resolve_recon)
    app.router.add_post("/actions/jobs/{verb}", job)
