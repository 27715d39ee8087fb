"""The console as an aiohttp application: Jinja2 templates and local static files, session sign-in,
CSRF on every form, security headers. Blocking use cases run on worker threads (`asyncio.to_thread`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import structlog
from aiohttp import web

from server.adapters.admin_queries import AdminQueries
from server.adapters.admin_stats import Overview
from server.adapters.read_routing import ReplicaLag
from server.console.sessions import LOGIN_COOKIE, SESSION_COOKIE, Session, Sessions, same_token
from server.console.throttle import SignInThrottle
from server.domain.clock import Clock
from server.domain.money import yuan
from server.service.feed import SubscriberLag
from server.service.operations import OperationsService
from server.service.webhooks import WebhookService

log = structlog.get_logger("orderpay.console")
HERE = Path(__file__).parent
CST = ZoneInfo("Asia/Shanghai")
PUBLIC_PATHS = ("/sign-in", "/static/", "/healthz")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class ConsoleDeps:
    queries: AdminQueries
    operations: OperationsService
    sessions: Sessions
    clock: Clock
    overview: Callable[[datetime], Overview]
    secure_cookies: bool = False  # served over TLS: Secure cookies and HSTS
    throttle: SignInThrottle | None = None
    feed_lags: Callable[[], list[SubscriberLag]] | None = None  # issue 19: event-feed subscribers
    webhooks: WebhookService | None = None  # issue 19 item 4: subscribers with their webhooks
    # ORDERPAY_DATABASE_READ_URL: the standby the pages read from (None: they read the primary)
    replica_lag: Callable[[], ReplicaLag | None] | None = None
    accounts: tuple[str, ...] = ()  # issue 18: the configured merchant accounts, for the filters


DEPS = web.AppKey("deps", ConsoleDeps)
SESSION = web.RequestKey("session", Session)


def deps(request: web.Request) -> ConsoleDeps:
    return request.app[DEPS]


def session_of(request: web.Request) -> Session:
    session = request.get(SESSION)
    if not isinstance(session, Session):
        raise web.HTTPFound("/sign-in")
    return session


def render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    """A page with the context every template shares (session, path, now)."""
    base = {
        "session": request.get(SESSION),
        "path": request.path,
        "now": deps(request).clock(),
        "age": fmt_age,
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


def page(template: str) -> Callable[[Callable[[web.Request], Awaitable[dict[str, Any]]]], Handler]:
    """A GET handler returning its template's context."""

    def wrap(handler: Callable[[web.Request], Awaitable[dict[str, Any]]]) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            return render(request, template, await handler(request))

        return run

    return wrap


@web.middleware
async def log_line(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One canonical line per console request (never the form body: it may hold a token)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        status = exc.status
        raise
    else:
        status = response.status
        return response
    finally:
        session = request.get(SESSION)
        log.info(
            "console",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            actor=session.actor if isinstance(session, Session) else None,
        )


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.app[DEPS].secure_cookies:  # over TLS: browsers must never fall back to plain http
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def signed_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but sign-in and static needs a session; every POST needs its CSRF token."""
    if request.path.startswith(PUBLIC_PATHS):
        if request.method == "POST":
            await _check_login_csrf(request)
        return await handler(request)
    session = deps(request).sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        if request.method == "POST":
            return _refused(request, 403, "Your session has ended; sign in again.")
        raise web.HTTPFound("/sign-in")
    request[SESSION] = session
    if request.method == "POST":
        form = await request.post()
        presented = form.get("csrf")
        if not same_token(session.csrf, presented if isinstance(presented, str) else None):
            return _refused(
                request, 403, "This form is missing its CSRF token (or it is stale). Nothing was done."
            )
    return await handler(request)


async def _check_login_csrf(request: web.Request) -> None:
    form = await request.post()
    presented = form.get("csrf")
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not same_token(cookie, presented if isinstance(presented, str) else None):
        raise web.HTTPForbidden(
            text="sign-in form without its CSRF token: reload the page", content_type="text/plain"
        )


def _refused(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "refused.html", {"message": message, "title": "Refused"}, status=status)


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def fmt_yuan(fen: int | None) -> str:
    return "—" if fen is None else yuan(fen)


def fmt_age(value: datetime | None, now: datetime) -> str:
    if value is None:
        return ""
    seconds = int((now - value).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def session_cookie_options(console: ConsoleDeps, ttl: timedelta) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "Strict",
        "secure": console.secure_cookies,
        "path": "/",
        "max_age": int(ttl.total_seconds()),
    }
