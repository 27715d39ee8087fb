"""The sidecar's routes: thin translators from HTTP to NotificationService and back."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.metrics import REGISTRY
from server.notify.keys import CONFIG, EXECUTOR, READY_CHECK, RECORD, SERVICE, RequestRecord
from server.notify.responses import acknowledged, fail
from server.service.notifications import Disposition, Receipt
from server.wxpay.notification import ACCOUNT_HEADER

# The HTTP answer for each disposition (WeChat retries anything but 2xx; 4xx marks it as refused).
HTTP_STATUS = {
    Disposition.ACK: 204,
    Disposition.REJECT_AUTH: 401,
    Disposition.REJECT_MALFORMED: 400,
    Disposition.RETRY: 503,
    Disposition.FAIL: 500,
}
TOO_LARGE = "too_large"
TIMEOUT = "timeout"
_CHUNK = 16 * 1024
_T = TypeVar("_T")


class AnswerTimeout(Exception):  # noqa: N818 - a signal inside this module, not an error type
    """The work did not finish in time; it keeps running in the executor."""


async def notify(request: web.Request) -> web.Response:
    config, record = request.app[CONFIG], request[RECORD]
    body = await read_limited(request, config.max_body_bytes)
    if body is None:
        record.outcome = TOO_LARGE
        return fail(413, f"body larger than {config.max_body_bytes} bytes")
    service, headers = request.app[SERVICE], _headers_for_account(request)
    try:
        receipt = await in_executor(
            request.app[EXECUTOR], lambda: service.receive(headers, body), config.answer_within_s
        )
    except AnswerTimeout:
        # WeChat waits 5 s at most: answer "retry" now; the delivery finishes (or is retried) anyway.
        record.outcome = TIMEOUT
        return fail(503, "processing is taking too long; retry later")
    _note(record, receipt)
    return acknowledged() if receipt.acknowledged else fail(HTTP_STATUS[receipt.disposition], receipt.message)


def _headers_for_account(request: web.Request) -> dict[str, str]:
    """The request's headers plus the account its URL names (issue 18), which picks the keys it is
    verified with. Any such header a sender set itself is dropped: only the path says."""
    headers = {k: v for k, v in request.headers.items() if k.lower() != ACCOUNT_HEADER.lower()}
    account = request.match_info.get("account")
    if account:
        headers[ACCOUNT_HEADER] = account
    return headers


INDEX_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>orderpay notify sidecar</title>
<style>body{font-family:system-ui,sans-serif;max-width:640px;margin:32px auto;padding:0 16px;color:#222}
code{background:#f2f2f2;padding:1px 4px;border-radius:3px}li{margin:6px 0}</style></head><body>
<h1>orderpay notify sidecar</h1>
<p>This listener receives WeChat Pay's signed payment and refund notifications for orderpay and hands
them to its order service. Every notification is verified (timestamp window, platform key serial, RSA
signature over the raw body) before it is decrypted; anything else is answered with a 4xx
<code>FAIL</code>.</p>
<ul>
<li><code>POST /wxpay/notify</code>: where WeChat Pay delivers notifications
(the <code>notify_url</code>)</li>
<li><a href="/healthz">/healthz</a>: liveness, <code>{"status": "ok"}</code></li>
<li><a href="/readyz">/readyz</a>: readiness, the database answers</li>
</ul>
<p>Metrics are not served on this listener: they have their own, on loopback
(<code>ORDERPAY_METRICS_LISTEN</code>, <code>GET /metrics</code>).</p>
<p>More: <code>README.md</code> of the orderpay repository, sections Operations and Configuration.</p>
</body></html>
"""


async def index(_request: web.Request) -> web.Response:
    """What this listener is, instead of a bare 404 for someone who opens it in a browser."""
    return web.Response(text=INDEX_PAGE, content_type="text/html", charset="utf-8")


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    check = request.app[READY_CHECK]
    try:
        ready = await in_executor(request.app[EXECUTOR], check, request.app[CONFIG].ready_timeout_s)
    except AnswerTimeout:
        ready = False
    return web.json_response({"status": "ready" if ready else "unavailable"}, status=200 if ready else 503)


async def metrics(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None as soon as it is known to exceed `limit` (never buffers more)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def in_executor(executor: Executor, work: Callable[[], _T], timeout_s: float) -> _T:
    """Run blocking `work` off the event loop; AnswerTimeout after `timeout_s`, without cancelling it
    once started (a half-applied notification is worse than a late one)."""
    submitted = executor.submit(contextvars.copy_context().run, work)  # the log context goes along
    waiting = asyncio.wrap_future(submitted)
    done, _ = await asyncio.wait({waiting}, timeout=timeout_s)
    if not done:
        submitted.cancel()  # only takes effect while still queued: then no work is done at all
        waiting.add_done_callback(_consume)
        raise AnswerTimeout
    return waiting.result()


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not report it as never retrieved


def _note(record: RequestRecord, receipt: Receipt) -> None:
    record.outcome = receipt.outcome
    record.notification_id = receipt.notification_id
    record.event_type = receipt.event_type
    record.out_trade_no = receipt.out_trade_no
