"""Serving the console from a plain thread (what `orderpay serve` / `orderpay dev` start), TLS optional.

HOOK for the lead: `start_console(app)` is the one call the composition root / async server makes.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from datetime import timedelta

from aiohttp import web

from server.app import App
from server.console.app import ConsoleDeps
from server.console.listener import ConsoleListener, check_console_listener, ssl_context
from server.console.sessions import Sessions
from server.console.site import make_console_app
from server.rpc.auth import TokenAuthenticator


class ConsoleServerThread:
    """An aiohttp app on its own event loop in a daemon thread; `app_factory` runs on that loop."""

    def __init__(
        self,
        app_factory: Callable[[], web.Application],
        host: str,
        port: int,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self._factory, self._host, self._port, self._ssl = app_factory, host, port, context
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve()), name="console", daemon=True
        )

    def start(self, timeout: float = 30.0) -> int:
        self._thread.start()
        if not self._started.wait(timeout) or self._failure is not None:
            raise RuntimeError(f"console failed to start on {self._host}:{self._port}") from self._failure
        return self._port

    def stop(self, grace: float = 5.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(grace + 5.0)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        runner = web.AppRunner(self._factory(), handle_signals=False, shutdown_timeout=2.0, access_log=None)
        try:
            await runner.setup()
            site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl)
            await site.start()
            self._port = int(runner.addresses[0][1])
        except Exception as exc:  # noqa: BLE001 - handed to start()'s caller, in its own thread
            self._failure = exc
            await runner.cleanup()
            return
        finally:
            self._started.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()


def console_deps(app: App) -> ConsoleDeps:
    from server.adapters.admin_stats import overview  # noqa: PLC0415

    sessions = Sessions(
        TokenAuthenticator(app.settings.tokens),
        app.clock,
        timedelta(seconds=app.settings.console_session_ttl_s),
    )
    return ConsoleDeps(
        queries=app.admin,
        operations=app.operations,
        sessions=sessions,
        clock=app.clock,
        overview=lambda now: overview(app.db, now),
        secure_cookies=bool(app.settings.console_tls_cert),
    )


def start_console(app: App) -> tuple[ConsoleServerThread, ConsoleListener] | None:
    """Start the console when ORDERPAY_CONSOLE_LISTEN is set; refuses an unsafe listener (ConfigError)."""
    listener = check_console_listener(app.settings)
    if listener is None:
        return None
    console = console_deps(app)
    server = ConsoleServerThread(
        lambda: make_console_app(console), listener.host, listener.port, ssl_context(app.settings)
    )
    port = server.start()
    return server, ConsoleListener(listener.host, port, listener.tls)
