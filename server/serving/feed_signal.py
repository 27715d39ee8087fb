"""Wakes this process's Watch streams when the event feed grows.

In-process the signal comes from the unit of work after its commit (server.service.feed.FeedCommits);
across processes on PostgreSQL from the listener (server/serving/signals.py), on `NOTIFY orderpay_feed`.
A wake is a hint: a woken stream reads the log from where it is, so a spurious or coalesced wake
costs one query and loses nothing. Waiting streams hold one future each: no thread, no polling.
"""

from __future__ import annotations

import asyncio


class FeedSignal:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._generation = 0
        self._changed: asyncio.Future[None] = loop.create_future()
        self._closing = False
        self.waiting = 0

    @property
    def generation(self) -> int:
        """Take it before reading the log; `wait(generation)` then returns at once if a wake came
        in between (the read may have missed that commit)."""
        return self._generation

    @property
    def closing(self) -> bool:
        return self._closing

    def wake(self, position: int = 0) -> None:
        """Any thread."""
        del position
        if self._on_loop():
            self._wake()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    async def wait(self, generation: int) -> None:
        if generation != self._generation or self._closing:
            return
        self.waiting += 1
        try:
            await asyncio.shield(self._changed)
        finally:
            self.waiting -= 1

    def close(self) -> None:
        """Shutdown: every stream ends (its subscriber resumes elsewhere from its acknowledgement)."""
        self._closing = True
        self._wake()

    def _wake(self) -> None:
        self._generation += 1
        changed, self._changed = self._changed, self._loop.create_future()
        if not changed.done():
            changed.set_result(None)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False
