"""Console pages (GET) and sign-in / sign-out. Handlers translate the query string and delegate."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import Any

from aiohttp import web

from server.adapters.admin_shapes import OrderFilter, OrderStory
from server.console.charts import bar_list, column_chart
from server.console.deps import CST, deps, page, render, session_cookie_options
from server.console.sessions import LOGIN_COOKIE, SESSION_COOKIE, SignInRefused
from server.domain.errors import DomainError
from server.domain.notification import NotificationStatus
from server.domain.operations import Resolution, fulfilment_retryable, may_resolve, nothing_owed
from server.domain.order import Fulfilment, Order, OrderStatus
from server.domain.refund import Refund, RefundStatus, live_refund_amount

STATUSES = [s.value for s in OrderStatus]
FULFILMENTS = [f.value for f in Fulfilment]
PAGE = 25


# --- sign-in ----------------------------------------------------------------------------------------
async def sign_in_form(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    # Reuse the pending form's token: a second GET (another tab, a favicon redirect) must not void it.
    existing = request.cookies.get(LOGIN_COOKIE, "")
    token = existing if 20 <= len(existing) <= 64 and existing.isascii() else secrets.token_urlsafe(24)
    response = render(request, "sign_in.html", {"csrf": token, "error": error, "title": "Sign in"}, status)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        path="/sign-in",
        max_age=1800,
        secure=deps(request).secure_cookies,
    )
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = form.get("token")
    console = deps(request)
    throttle, peer = console.throttle, request.remote or "?"
    wait = throttle.locked_for(peer) if throttle is not None else 0.0
    if wait > 0:  # locked out: not even the right token is looked at
        refused_now = await sign_in_form(
            request, f"too many failed sign-ins; try again in {ceil(wait)} s", 429
        )
        refused_now.headers["Retry-After"] = str(ceil(wait))
        return refused_now
    try:
        session = console.sessions.sign_in(token if isinstance(token, str) else "")
    except SignInRefused as refused:
        if throttle is not None:
            throttle.failed(peer)
        return await sign_in_form(request, str(refused), status=403)
    if throttle is not None:
        throttle.succeeded(peer)
    response = web.HTTPFound("/attention")
    ttl = session.expires_at - console.clock()
    response.set_cookie(SESSION_COOKIE, session.session_id, **session_cookie_options(console, ttl))
    response.del_cookie(LOGIN_COOKIE, path="/sign-in")
    raise response


async def sign_out(request: web.Request) -> web.StreamResponse:
    deps(request).sessions.sign_out(request.cookies.get(SESSION_COOKIE))
    response = web.HTTPFound("/sign-in")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def healthz(request: web.Request) -> web.Response:
    del request
    return web.Response(text="ok")


async def home(request: web.Request) -> web.StreamResponse:
    del request
    raise web.HTTPFound("/attention")


# --- pages ------------------------------------------------------------------------------------------
@page("attention.html")
async def attention(request: web.Request) -> dict[str, Any]:
    console = deps(request)
    account = _choice(request.query.get("account"), list(console.accounts))
    found = await asyncio.to_thread(console.queries.needs_attention, console.clock(), 50, account)
    return {"a": found, "title": "Needs attention", "accounts": console.accounts, "account": account or ""}


@page("orders.html")
async def orders(request: web.Request) -> dict[str, Any]:
    q = request.query
    where = OrderFilter(
        status=_choice(q.get("status"), STATUSES),
        fulfilment=_choice(q.get("fulfilment"), FULFILMENTS),
        product_id=q.get("product") or None,
        user_id=q.get("user") or None,
        created_from=_day(q.get("from")),
        created_to=_day(q.get("to"), end=True),
        needs_attention=q.get("attention") == "1",
        text=q.get("q") or None,
        account=_choice(q.get("account"), list(deps(request).accounts)),
    )
    error = ""
    try:
        page = await asyncio.to_thread(
            deps(request).queries.list_orders, where, PAGE, q.get("page_token", "")
        )
    except DomainError as exc:
        page, error = None, exc.message
    filters = {k: v for k, v in q.items() if k != "page_token"}
    return {
        "page": page,
        "error": error,
        "filters": filters,
        "statuses": STATUSES,
        "fulfilments": FULFILMENTS,
        "accounts": deps(request).accounts,
        "title": "Orders",
    }


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # event | refund | notification | operation
    title: str
    detail: str
    actor: str = ""
    request_id: str = ""


def timeline(story: OrderStory) -> list[Entry]:
    entries = [
        Entry(
            e.at,
            "operation" if e.field == "operation" else "event",
            f"{e.field}: {e.from_value or '∅'} → {e.to_value}",
            e.cause,
            e.actor,
            e.request_id,
        )
        for e in story.events
    ]
    for r in story.refunds:
        entries.append(
            Entry(r.created_at, "refund", f"退款 refund {r.out_refund_no}: {r.status.value}", r.reason)
        )
        if r.succeeded_at is not None:
            entries.append(
                Entry(r.succeeded_at, "refund", f"退款成功 refund {r.out_refund_no} succeeded", "")
            )
    entries.extend(
        Entry(
            n.received_at, "notification", f"通知 {n.event_type} → {n.outcome or n.status}", n.notification_id
        )
        for n in story.notifications
    )
    return sorted(entries, key=lambda entry: entry.at)


def order_actions(order: Order, refunds: Sequence[Refund], recon: Sequence[object] = ()) -> dict[str, bool]:
    """The actions the order page shows: exactly what the operations use cases would take (the rules
    in server.domain.operations), never a restatement of them. `recon`: its open exceptions."""
    live = live_refund_amount(refunds)
    return {
        "can_resolve": may_resolve(order, Resolution.REFUND, live),
        "can_accept": may_resolve(order, Resolution.ACCEPT, live),
        "can_retry": fulfilment_retryable(order, live),
        # RefundService.resolve_abnormal's own precondition: ABNORMAL at WeChat (it has a refund_id)
        "can_resolve_abnormal": any(r.status is RefundStatus.ABNORMAL and r.refund_id for r in refunds),
        "can_poll": any(r.status is RefundStatus.PROCESSING for r in refunds),
        "can_resolve_recon": bool(recon),
    }


async def order_page(request: web.Request) -> web.StreamResponse:
    console = deps(request)
    story = await asyncio.to_thread(console.queries.order_story, request.match_info["order_id"])
    if story is None:
        raise web.HTTPNotFound(text="no such order", content_type="text/plain")
    order = story.order
    context = {
        "story": story,
        "o": order,
        "timeline": timeline(story),
        **order_actions(order, story.refunds, story.recon),
        "refund_fen": order.paid_fee - live_refund_amount(story.refunds),  # what a refund sends
        "nothing_owed": nothing_owed(order, live_refund_amount(story.refunds)),
        "title": f"Order {order.order_id}",
    }
    return render(request, "order.html", context)


@page("refunds.html")
async def refunds(request: web.Request) -> dict[str, Any]:
    console = deps(request)
    stuck = request.query.get("stuck") == "1"
    status = _choice(request.query.get("status"), [s.value for s in RefundStatus])
    rows = await asyncio.to_thread(
        lambda: console.queries.list_refunds(status=status, stuck=stuck, limit=100, now=console.clock())
    )
    return {"refunds": rows, "stuck": stuck, "status": status or "", "title": "Refunds"}


@page("notifications.html")
async def notifications(request: web.Request) -> dict[str, Any]:
    console = deps(request)
    failing = request.query.get("failing") == "1"
    outcome = request.query.get("outcome") or None
    statuses = [s.value for s in NotificationStatus]
    status = _choice(request.query.get("status"), statuses)
    account = _choice(request.query.get("account"), list(console.accounts))
    rows = await asyncio.to_thread(
        lambda: console.queries.list_notifications(
            status=status, outcome=outcome, failing=failing, limit=100, account=account
        )
    )
    return {
        "accounts": console.accounts,
        "account": account or "",
        "notes": rows,
        "statuses": statuses,
        "failing": failing,
        "outcome": outcome or "",
        "status": status or "",
        "title": "Notifications",
    }


@page("jobs.html")
async def jobs(request: web.Request) -> dict[str, Any]:
    console = deps(request)
    fulfilments = await asyncio.to_thread(console.queries.list_fulfilment_jobs, limit=100)
    polls = await asyncio.to_thread(
        lambda: console.queries.list_refunds(status=RefundStatus.PROCESSING.value, limit=100)
    )
    subscribers: list[Any] = []
    if console.webhooks is not None:  # the same lags, with each subscriber's webhook
        subscribers = await asyncio.to_thread(console.webhooks.subscribers)
    elif console.feed_lags is not None:
        subscribers = await asyncio.to_thread(console.feed_lags)
    return {
        "fulfilments": fulfilments,
        "polls": polls,
        "subscribers": subscribers,
        "title": "Background work",
    }


@page("overview.html")
async def overview(request: web.Request) -> dict[str, Any]:
    console = deps(request)
    figures = await asyncio.to_thread(console.overview, console.clock())
    replica = await asyncio.to_thread(console.replica_lag) if console.replica_lag is not None else None
    hours = [h.astimezone(CST).strftime("%H:00") for h in figures.hours]
    return {
        "f": figures,
        "read_standby": console.replica_lag is not None,
        "replica": replica,
        "orders_chart": column_chart(
            figures.orders_per_hour, hours, "orders per hour (Beijing time)", "series-a"
        ),
        "payments_chart": column_chart(
            figures.payments_per_hour, hours, "payments per hour (Beijing time)", "series-b"
        ),
        "outcomes_chart": bar_list(figures.notification_outcomes, "notification outcomes, 24 h", "series-c"),
        "latency_chart": bar_list(figures.latency_buckets, "paid → fulfilled", "series-a"),
        "title": "Overview",
    }


def _choice(value: str | None, allowed: list[str]) -> str | None:
    return value if value in allowed else None


def _day(value: str | None, *, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.fromisoformat(value)
    except ValueError:
        return None
    day = day if day.tzinfo else day.replace(tzinfo=UTC)
    return day + timedelta(days=1) if end and len(value) == 10 else day


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", home)
    r.add_get("/healthz", healthz)
    r.add_get("/sign-in", sign_in_form)
    r.add_post("/sign-in", sign_in)
    r.add_post("/sign-out", sign_out)
    r.add_get("/attention", attention)
    r.add_get("/orders", orders)
    r.add_get("/orders/{order_id}", order_page)
    r.add_get("/refunds", refunds)
    r.add_get("/notifications", notifications)
    r.add_get("/jobs", jobs)
    r.add_get("/overview", overview)
