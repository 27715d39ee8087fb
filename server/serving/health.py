"""gRPC health follows the database: NOT_SERVING while no writable primary answers, SERVING again once
one does (a failover in progress, the database down). `/readyz` asks the same question per request.

The probe runs on a thread of its own (a connect to a dead host may take its connect_timeout per host),
every `db_health_interval_s`; it is one short query per process and interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("orderpay.health")


class PrimaryWatch:
    def __init__(
        self, ready: Callable[[], bool], set_serving: Callable[[bool], Awaitable[None]], interval_s: float
    ) -> None:
        self._ready = ready
        self._set_serving = set_serving
        self._interval_s = interval_s
        self._serving = True  # the server starts SERVING: the database answered at start-up
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            ready = await asyncio.to_thread(self._ready)
            if ready != self._serving:
                self._serving = ready
                log.warning("health.database", serving=ready)
                await self._set_serving(ready)
