"""`make_app(config)`: the sandbox as an aiohttp application, plus runners for tests and the CLI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from sandbox.api import abnormal_refund, partner, routes, security
from sandbox.bills import routes as bill_routes
from sandbox.config import SandboxConfig
from sandbox.control import dev_triggers
from sandbox.control import keys as key_control
from sandbox.control import routes as control
from sandbox.engine.clock import SandboxClock
from sandbox.engine.state import SANDBOX, Clock, Sandbox, utc_now
from sandbox.engine.world import WORLD, World
from sandbox.pages import cashier, index


def make_app(config: SandboxConfig, clock: Clock | SandboxClock = utc_now) -> web.Application:
    app = web.Application(middlewares=[routes.emulated_api, control.control_errors])
    world = World.build(config, clock)
    app[WORLD] = world
    app[SANDBOX] = world.primary  # the first account: what the single-merchant control calls address
    app.cleanup_ctx.append(_background)
    routes.add_routes(app)
    partner.add_routes(app)  # 服务商 endpoints (issue 18)
    security.add_routes(app)  # POST /v3/security/echo (2026-04)
    abnormal_refund.add_routes(app)
    control.add_routes(app)
    key_control.add_routes(app)
    cashier.add_routes(app)
    bill_routes.add_routes(app)  # bills and the clock (issue 12)
    index.add_routes(app)
    dev_triggers.add_routes(app)  # issue 13: scenarios for `orderpay sandbox trigger`
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The notifier's HTTP session and every timer live exactly as long as the app."""
    world = app[WORLD]
    await world.start()
    yield
    await world.stop()


@dataclass
class RunningServer:
    """An aiohttp app served from a background thread's own event loop (tests, tools)."""

    host: str
    port: int
    app: web.Application
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _stopped: asyncio.Event

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout=30)

    def call(self, coro: object) -> object:
        """Run a coroutine on the server's loop and wait for its result (e.g. `sandbox.reset()`)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)  # type: ignore[arg-type]


def serve_in_thread(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start `app` on host:port (0 = ephemeral) in a daemon thread; return once it is listening."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def serve() -> None:
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        stopped = asyncio.Event()
        holder.update(port=runner.addresses[0][1], stopped=stopped)
        ready.set()
        try:
            await stopped.wait()
        finally:
            await runner.cleanup()

    def main() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread, which raises it
            holder["error"] = exc
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name=f"aiohttp-{host}:{port}", daemon=True)
    thread.start()
    ready.wait(timeout=30)
    if "error" in holder or "port" not in holder:
        raise RuntimeError(f"server did not start: {holder.get('error')!r}")
    bound = holder["port"]
    stopped = holder["stopped"]
    if not isinstance(bound, int) or not isinstance(stopped, asyncio.Event):
        raise TypeError("server thread reported an unexpected state")
    return RunningServer(host, bound, app, loop, thread, stopped)


@dataclass
class RunningSandbox:
    server: RunningServer

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def sandbox(self) -> Sandbox:
        return self.server.app[SANDBOX]

    @property
    def world(self) -> World:
        return self.server.app[WORLD]

    def stop(self) -> None:
        self.server.stop()


def run_in_thread(config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> RunningSandbox:
    """The sandbox on an ephemeral loopback port in a background thread; `.stop()` shuts it down."""
    return RunningSandbox(serve_in_thread(make_app(config), host, port))
