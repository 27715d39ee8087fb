"""Request id, the canonical log line, the notification metric, and no leaked tracebacks."""

from __future__ import annotations

import logging
import re
import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from server.metrics import NOTIFICATIONS
from server.notify.keys import RECORD, SERVICE, RequestRecord
from server.notify.responses import fail
from server.service.notifications import ALARMING_OUTCOMES
from server.wxpay.errors import OPERATOR_ACTIONS

REQUEST_ID_HEADER = "X-Request-Id"
NOTIFY_PATH = "/wxpay/notify"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# 5xx answers that do not come from the service say why in the outcome label.
INTERNAL = "internal"
UNKNOWN = "unknown"  # the metrics' account label for a notify URL naming no configured account

log = structlog.get_logger("orderpay.notify")


def request_id_of(request: web.Request) -> str:
    """The caller's id when it is short and printable, else a new one (never trust header bytes)."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    return incoming if _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


@web.middleware
async def canonical_line(request: web.Request, handler: Handler) -> web.StreamResponse:
    record = RequestRecord(request_id=request_id_of(request))
    request[RECORD] = record
    # Every line logged for this request, here or in the service (in_executor carries the context), says
    # which request it was. Each request runs in a task of its own: its context starts as a copy.
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=record.request_id)
    started = time.perf_counter()
    response = await _answer(request, handler, record)
    response.headers[REQUEST_ID_HEADER] = record.request_id
    _log_line(request, record, response.status, time.perf_counter() - started)
    return response


async def _answer(request: web.Request, handler: Handler, record: RequestRecord) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:  # 404 / 405 from routing: plain, no body of ours needed
        record.outcome = record.outcome or f"http_{exc.status}"
        # Returning the exception itself is deprecated in aiohttp (and drops the connection under -W error).
        return web.Response(status=exc.status, text=exc.text, headers=exc.headers)
    except Exception:
        log.exception("notify.failed", path=request.path)
        record.outcome = INTERNAL
        return fail(500, "internal error")


def _account_label(request: web.Request) -> str:
    """The notify URL's account when it is a configured one (the bare URL: the default account), else
    `unknown`: a label value never comes from the wire, so its cardinality is the configuration's."""
    accounts: tuple[str, ...] = getattr(request.app.get(SERVICE), "accounts", ())
    named = request.match_info.get("account")
    if named is None:
        return accounts[0] if accounts else UNKNOWN
    return named if named in accounts else UNKNOWN


def _log_line(request: web.Request, record: RequestRecord, status: int, seconds: float) -> None:
    if request.path != NOTIFY_PATH and not request.path.startswith(NOTIFY_PATH + "/"):
        log.debug("notify.http", path=request.path, status=status)
        return
    NOTIFICATIONS.labels(_account_label(request), record.outcome or INTERNAL).inc()
    action = OPERATOR_ACTIONS.get(record.outcome)
    if action is not None:
        record.extra.setdefault("action", action)
    log.log(
        _level(status, record.outcome),
        "notification",
        request_id=record.request_id,
        event_type=record.event_type,
        notification_id=record.notification_id,
        out_trade_no=record.out_trade_no,
        outcome=record.outcome,
        status=status,
        duration_ms=round(seconds * 1000, 1),
        **record.extra,
    )


def _level(status: int, outcome: str) -> int:
    if status >= 500 or outcome in ALARMING_OUTCOMES or outcome in OPERATOR_ACTIONS:
        return logging.ERROR
    return logging.WARNING if status >= 400 else logging.INFO
