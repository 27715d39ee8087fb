"""A real aiohttp webhook receiver on 127.0.0.1:0 for the webhook tests: it records every request
(headers and body) and answers 204, or a failure status while told to fail."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from server.app import App
from server.jobs.webhooks import WebhookTask
from server.service.shapes import JobResult
from server.serving.http import AppThread
from tests.jobs.helpers import unpaid_order

HOOK_PRODUCT = "hook-thing"  # the product the webhook tests' orders are for (tests/webhooks/conftest.py)


@dataclass(frozen=True)
class Received:
    timestamp: str
    signature: str
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def position(self) -> int:
        return int(self.event["position"])


class RecordingReceiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.fail_next = 0  # answer this many requests with `fail_status` first
        self.fail_always = False
        self.fail_status = 500
        self.hang = False  # never answer: the sender's timeout is what ends the request
        self._lock = threading.Lock()
        self._thread = AppThread("webhook-receiver", [(self._app, "127.0.0.1", 0, None)], grace_s=1.0)
        (self.port,) = self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.hang:
            await asyncio.Event().wait()  # cancelled when the sender gives up or the receiver stops
        with self._lock:
            failing = self.fail_always or self.fail_next > 0
            self.fail_next = max(0, self.fail_next - 1)
            status = self.fail_status if failing else 204
            self.received.append(
                Received(
                    request.headers.get("Orderpay-Timestamp", ""),
                    request.headers.get("Orderpay-Signature", ""),
                    body,
                    status,
                )
            )
        return web.Response(status=status)

    def acknowledged_positions(self) -> list[int]:
        """What a receiver that de-duplicates by position handled, in arrival order."""
        seen: list[int] = []
        for got in self.received:
            if got.answered < 300 and (not seen or got.position > seen[-1]):
                seen.append(got.position)
        return seen

    def stop(self) -> None:
        self._thread.stop(2.0)


def some_events(app: App, count: int) -> list[int]:
    """`count` new orders: one ORDER_CREATED each; their positions."""
    before = app.feed.head()
    for _ in range(count):
        unpaid_order(app, f"u-{secrets.token_hex(4)}", HOOK_PRODUCT)
    return list(range(before + 1, app.feed.head() + 1))


def drain(task: WebhookTask, rounds: int = 20) -> list[JobResult]:
    """Run the sender until a run has nothing more to send right now (bounded: never hangs)."""
    results = []
    for _ in range(rounds):
        result = task.run_once()
        results.append(result)
        if not result.more:
            return results
    raise AssertionError(f"the sender never finished: {results}")
