"""`make_notify_app`: the sidecar as an aiohttp Application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor

from aiohttp import web

from server.notify import views
from server.notify.keys import CONFIG, EXECUTOR, READY_CHECK, SERVICE, NotifyConfig
from server.notify.middleware import NOTIFY_PATH, canonical_line
from server.service.notifications import NotificationService

# WeChat Pay gives up after 5 s: answer by 4 s whatever happens, with room for the network.
ANSWER_WITHIN_S = 4.0
READY_TIMEOUT_S = 2.0
DEFAULT_WORKERS = 16


def make_notify_app(
    service: NotificationService,
    *,
    max_body_bytes: int,
    ready_check: Callable[[], bool],
    executor: Executor | None = None,
    workers: int = DEFAULT_WORKERS,
    answer_within_s: float = ANSWER_WITHIN_S,
) -> web.Application:
    """Without `executor`, the app owns a thread pool of `workers`, shut down when the app stops
    (after in-flight requests finished); a passed-in executor stays the caller's to close."""
    app = web.Application(middlewares=[canonical_line], client_max_size=max_body_bytes)
    app[SERVICE] = service
    app[READY_CHECK] = ready_check
    app[CONFIG] = NotifyConfig(max_body_bytes, answer_within_s, min(READY_TIMEOUT_S, answer_within_s))
    if executor is None:
        app.cleanup_ctx.append(_owned_executor(workers))
    else:
        app[EXECUTOR] = executor
    app.router.add_post(NOTIFY_PATH, views.notify)
    app.router.add_post(NOTIFY_PATH + "/{account}", views.notify)  # one URL per merchant account
    app.router.add_get("/", views.index)
    app.router.add_get("/healthz", views.healthz)
    app.router.add_get("/readyz", views.readyz)
    return app


def make_metrics_app() -> web.Application:
    """Prometheus metrics, served on their own listener (ORDERPAY_METRICS_LISTEN)."""
    app = web.Application()
    app.router.add_get("/metrics", views.metrics)
    return app


def _owned_executor(workers: int) -> Callable[[web.Application], AsyncIterator[None]]:
    async def executor_context(app: web.Application) -> AsyncIterator[None]:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notify")
        app[EXECUTOR] = pool
        yield
        # Queued work is dropped (its requests were answered 503); running work finishes first.
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    return executor_context
