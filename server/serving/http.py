"""Every HTTP listener of a process (notify sidecar, metrics, operations console) is served here, with
the same shedding of slow and surplus clients (server/serving/shedding.py): on the running loop
(`serve_app`) or, for an app whose handlers block, on a thread with a loop of its own (`AppThread`)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Sequence

from aiohttp import web

from server.config import Settings
from server.serving.shedding import ConnectionGuard, ConnectionLimits, GuardedSite

DEFAULT_GRACE_S = 10.0
# aiohttp's default keep-alive is an hour; an idle connection is a held file descriptor.
KEEPALIVE_S = 15.0
_START_TIMEOUT_S = 30.0


def listener_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=settings.notify_max_connections,
        header_timeout_s=settings.notify_header_timeout_s,
        body_timeout_s=settings.notify_body_timeout_s,
        idle_timeout_s=settings.notify_idle_timeout_s,
        max_body_bytes=settings.notify_max_body_bytes,
        max_connections_per_peer=settings.notify_max_connections_per_peer,
    )


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    limits: ConnectionLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, int]:
    """Listen on host:port (0 = an ephemeral port); returns the runner and the bound port.

    Every connection and request passes the `limits` (slow, oversized or surplus clients are shed).
    `await runner.cleanup()` stops accepting, gives in-flight requests `grace_s`, then runs the app's
    cleanup.
    """
    guard = ConnectionGuard(limits or ConnectionLimits(), ssl_context)
    app.middlewares.insert(0, guard.middleware)  # outermost: its deadline covers the others
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=grace_s,
        access_log=None,
        keepalive_timeout=min(KEEPALIVE_S, guard.limits.idle_timeout_s),
    )
    await runner.setup()
    site = GuardedSite(runner, host, port, guard, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site.port


class AppThread:
    """Apps served on their own event loop in a daemon thread (their factories run on that loop)."""

    def __init__(
        self,
        name: str,
        listeners: Sequence[tuple[Callable[[], web.Application], str, int, ssl.SSLContext | None]],
        *,
        grace_s: float = DEFAULT_GRACE_S,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._listeners, self._grace_s, self._limits = listeners, grace_s, limits
        self.ports: list[int] = []
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name=name, daemon=True)

    def start(self, timeout: float = _START_TIMEOUT_S) -> list[int]:
        """Start serving; returns the bound ports, in the order of `listeners`."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"{self._thread.name} did not start within {timeout}s")
        if self._failure is not None:
            where = ", ".join(f"{host}:{port}" for _, host, port, _ in self._listeners)
            raise RuntimeError(f"{self._thread.name} failed to start on {where}") from self._failure
        return self.ports

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, let in-flight answers finish (up to the grace), then close. Idempotent."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(self._grace_s + 5.0 if timeout is None else timeout)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        runners: list[web.AppRunner] = []
        try:
            for factory, host, port, context in self._listeners:
                runner, bound = await serve_app(
                    factory(), host, port, grace_s=self._grace_s, limits=self._limits, ssl_context=context
                )
                runners.append(runner)
                self.ports.append(bound)
        except Exception as exc:  # noqa: BLE001 - handed to start()'s caller, in its own thread
            self._failure = exc
            for started in reversed(runners):
                await started.cleanup()
            return
        finally:
            self._started.set()
        try:
            await self._stop.wait()
        finally:
            for started in reversed(runners):
                await started.cleanup()
