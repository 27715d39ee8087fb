"""The serving core on its own event loop in a thread, over an App the test owns (in-process tests)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from server.app import App
from server.config import Settings
from server.lifecycle import Stack, app_for, start_parts
from server.rpc.server import GrpcServer, Servicers, start_grpc_server
from server.serving.admission import Admission

_T = TypeVar("_T")


class ServingThread:
    """`start_parts(app, ...)` on a private loop; `call` runs a coroutine function on that loop."""

    def __init__(self, app: App, *, notify: bool = False, jobs: bool = False) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="serving", daemon=True)
        self._thread.start()
        self.stack: Stack = self.call(lambda: start_parts(app, notify=notify, jobs=jobs))

    @property
    def port(self) -> int:
        assert self.stack.grpc is not None
        return self.stack.grpc.port

    def call(self, work: Callable[[], Awaitable[_T]], timeout: float = 30.0) -> _T:
        async def run() -> _T:
            return await work()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def on_loop(self, work: Callable[[], _T]) -> _T:
        """A plain function on the loop thread (what only the loop may touch, e.g. the waiters)."""

        async def run() -> _T:
            return work()

        return self.call(run)

    def stop(self, grace: float = 1.0) -> None:
        self.call(lambda: self.stack.stop(grace), timeout=grace + 30.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class GrpcThread:
    """Just a gRPC server over the given servicers, on a private loop (servicer-level tests)."""

    def __init__(self, settings: Settings, servicers: Servicers) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc", daemon=True)
        self._thread.start()
        start = start_grpc_server(settings, servicers, Admission(settings.max_inflight))
        self.server: GrpcServer = asyncio.run_coroutine_threadsafe(start, self._loop).result(30)

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self, grace: float = 1.0) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(grace), self._loop).result(grace + 30.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def whole_stack(settings: Settings) -> tuple[App, ServingThread]:
    """What `orderpay serve` runs, in this process: the App, then every part on a private loop."""
    app = app_for(settings)
    return app, ServingThread(app, notify=True, jobs=True)
