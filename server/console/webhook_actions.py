"""Console actions on a subscriber's webhook (issue 19 item 4): re-enable one that was disabled after
days of failure (delivery resumes from the acknowledged position), or switch one off. Same form rules
as every console action: a reason and a ticked confirmation, as the signed-in admin."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from server.console.actions import ERROR_STATUS, _field
from server.console.deps import deps, render, session_of
from server.domain.errors import DomainError
from server.service.context import Caller
from server.service.operations import OperationResult


async def set_webhook(request: web.Request) -> web.Response:
    verb = request.match_info["verb"]
    if verb not in {"enable", "disable"}:
        raise web.HTTPNotFound
    form = await request.post()
    session = session_of(request)
    request_id = f"console-{uuid.uuid4().hex}"
    context: dict[str, object] = {
        "back": "/jobs#feed-subscribers",
        "request_id": request_id,
        "title": "Result",
    }
    webhooks = deps(request).webhooks
    if webhooks is None:
        raise web.HTTPNotFound
    if _field(form, "confirm") != "yes":
        context.update(
            error="NOT_CONFIRMED", message="Tick the confirmation box to go ahead; nothing was done."
        )
        return render(request, "result.html", context, status=400)
    name, reason = _field(form, "subscriber"), _field(form, "reason")
    caller = Caller(f"{session.actor}: {reason}"[:64], request_id)
    try:
        view = await asyncio.to_thread(webhooks.set_enabled, name, verb == "enable", caller)
    except DomainError as error:
        context.update(error=error.reason, message=error.message)
        return render(request, "result.html", context, status=ERROR_STATUS.get(error.reason, 422))
    state = view.webhook.state.value if view.webhook is not None else "?"
    after = view.subscriber.acked_position
    message = f"webhook of {name} is {state}; {view.lag} events to deliver after position {after}"
    context.update(result=OperationResult(f"{verb}_webhook", "done", message))
    return render(request, "result.html", context)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/actions/webhooks/{verb}", set_webhook)
