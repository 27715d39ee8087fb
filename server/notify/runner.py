"""Serving the sidecar: on a running loop (`start_notify_server`) or from a plain thread
(`NotifyServerThread`, for `orderpay serve`, whose gRPC server runs on threads)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from aiohttp import web

DEFAULT_GRACE_S = 10.0
_START_TIMEOUT_S = 30.0


async def start_notify_server(
    app: web.Application, host: str, port: int, *, grace_s: float = DEFAULT_GRACE_S
) -> tuple[web.AppRunner, int]:
    """Listen on host:port (0 = an ephemeral port); returns the runner and the bound port.

    `await runner.cleanup()` stops accepting, gives in-flight requests `grace_s`, then runs the
    app's cleanup (which closes an executor the app owns).
    """
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=grace_s, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


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
    ) -> None:
        self._app_factory = app_factory
        self._host, self._port, self._grace_s = host, port, grace_s
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
        try:
            runner, self._port = await start_notify_server(
                self._app_factory(), self._host, self._port, grace_s=self._grace_s
            )
        except Exception as exc:  # noqa: BLE001 - handed to start()'s caller, in its own thread
            self._failure = exc
            return
        finally:
            self._started.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
