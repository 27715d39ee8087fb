"""Serving the sidecar: on a running loop (`start_notify_server`) or from a plain thread
(`NotifyServerThread`, for `orderpay serve`, whose gRPC server runs on threads)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from aiohttp import web

from server.notify.app import make_metrics_app
from server.notify.shedding import ConnectionLimits, GuardedSite

DEFAULT_GRACE_S = 10.0
# aiohttp's default keep-alive is an hour; an idle connection is a held file descriptor.
KEEPALIVE_S = 15.0
_START_TIMEOUT_S = 30.0


async def start_notify_server(
    app: web.Application,
    host: str,
    port: int,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    limits: ConnectionLimits | None = None,
) -> tuple[web.AppRunner, int]:
    """Listen on host:port (0 = an ephemeral port); returns the runner and the bound port.

    Every connection passes the `limits` (slow or surplus clients are shed). `await runner.cleanup()`
    stops accepting, gives in-flight requests `grace_s`, then runs the app's cleanup (which closes
    an executor the app owns).
    """
    limits = limits or ConnectionLimits()
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=grace_s,
        access_log=None,
        keepalive_timeout=min(KEEPALIVE_S, limits.idle_timeout_s),
    )
    await runner.setup()
    site = GuardedSite(runner, host, port, limits)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site.port


async def start_metrics_server(host: str, port: int) -> tuple[web.AppRunner, int]:
    """/metrics on its own listener (loopback by default), never on the internet-facing one."""
    runner = web.AppRunner(make_metrics_app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site.port


class NotifyServerThread:
    """The sidecar on its own event loop in a daemon thread.

    `app_factory` is called on that loop (an Application belongs to the loop that runs it).
    """

    def __init__(
        self,
        app_factory: Callable[[], web.Application],
        host: str,
        port: int,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        limits: ConnectionLimits | None = None,
        metrics_listen: str = "",
    ) -> None:
        self._app_factory = app_factory
        self._host, self._port, self._grace_s = host, port, grace_s
        self._limits, self._metrics_listen = limits, metrics_listen
        self.metrics_port: int | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="notify-server", daemon=True)

    @property
    def port(self) -> int:
        return self._port

    def start(self, timeout: float = _START_TIMEOUT_S) -> int:
        """Start serving; returns the bound port once it accepts connections."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"notify sidecar did not start within {timeout}s")
        if self._failure is not None:
            raise RuntimeError(
                f"notify sidecar failed to start on {self._host}:{self._port}"
            ) from self._failure
        return self._port

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, let in-flight answers finish (up to the grace), then close. Idempotent."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(self._grace_s + 5.0 if timeout is None else timeout)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        runners: list[web.AppRunner] = []
        try:
            runner, self._port = await start_notify_server(
                self._app_factory(), self._host, self._port, grace_s=self._grace_s, limits=self._limits
            )
            runners.append(runner)
            if self._metrics_listen:
                host, _, port = self._metrics_listen.rpartition(":")
                metrics, self.metrics_port = await start_metrics_server(host, int(port))
                runners.append(metrics)
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
