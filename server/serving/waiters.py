"""Parked `GetOrder(wait_ms)` calls, keyed by order id, woken when the order's fulfilment commits.

A waiter is one future and one timer on the loop: memory, no thread, no polling. `wake(order_id)`
is the in-process signal (from any thread); across processes the PostgreSQL listener calls it.
A wake is a hint: the woken call re-reads the order and parks again if nothing was decided.

Every answer is counted by what ended its wait (`answers`, and the `orderpay_waiter_answers` metric):
`signal` (a wake found the order decided), `timeout` (the caller's wait_ms ran out), `shutdown`, or
`at_once` (decided before it parked). There is no other timer: a waiter is answered by its signal or
by its own deadline, and the count says which.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from server.metrics import WAITER_ANSWERS

_T = TypeVar("_T")
SIGNAL: Final = "signal"
TIMEOUT: Final = "timeout"
SHUTDOWN: Final = "shutdown"
AT_ONCE: Final = "at_once"
_ANSWERED_BY = {by: WAITER_ANSWERS.labels(by) for by in (SIGNAL, TIMEOUT, SHUTDOWN, AT_ONCE)}


class Waiters:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parked: dict[str, set[asyncio.Future[None]]] = {}
        self._closing = False
        self._waiting = 0
        self.answers: Counter[str] = Counter()  # by what ended the wait (module docstring)

    @property
    def closing(self) -> bool:
        """Set by `close()`: waits return at once (shutdown answers every waiter with its order)."""
        return self._closing

    def __len__(self) -> int:
        """Registered waiters (including those reading the order before they wait)."""
        return sum(len(futures) for futures in self._parked.values())

    @property
    def waiting(self) -> int:
        """Waiters parked right now: read done, nothing decided, awaiting a wake or their timeout."""
        return self._waiting

    async def until(
        self,
        order_id: str,
        read: Callable[[], Awaitable[_T]],
        decided: Callable[[_T], bool],
        timeout_s: float,
    ) -> _T:
        """`await read()` until `decided` holds, the timeout passes or the server closes; returns the
        last value read.

        Registering before each read closes the gap where a commit lands between the read and the
        park: its wake then finds this waiter (already woken, it reads again at once).
        """
        deadline = self._loop.time() + timeout_s
        woken = False
        while True:
            future = self._park(order_id)
            try:
                value = await read()
                remaining = deadline - self._loop.time()
                if decided(value):
                    by = SHUTDOWN if self._closing else SIGNAL if woken else AT_ONCE
                    return self._answer(value, by)
                if remaining <= 0 or self._closing:
                    return self._answer(value, SHUTDOWN if self._closing else TIMEOUT)
                self._waiting += 1
                try:
                    done, _ = await asyncio.wait({future}, timeout=remaining)
                finally:
                    self._waiting -= 1
                if not done:  # timed out: one last read answers with the current state
                    return self._answer(await read(), TIMEOUT)
                woken = True
            finally:  # also on cancellation: a cancelled call leaves nothing behind
                self._unpark(order_id, future)

    def _answer(self, value: _T, by: str) -> _T:
        self.answers[by] += 1
        _ANSWERED_BY[by].inc()
        return value

    def wake(self, order_id: str) -> None:
        """Wake the waiters of one order. Any thread."""
        if self._on_loop():
            self._wake(order_id)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, order_id)

    def wake_all(self) -> None:
        """Every waiter re-reads (e.g. after the cross-process listener reconnected). Loop only."""
        for order_id in list(self._parked):
            self._wake(order_id)

    def close(self) -> None:
        """Shutdown: every waiter returns its order now, and new waits do not park. Loop only."""
        self._closing = True
        self.wake_all()

    def _park(self, order_id: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        self._parked.setdefault(order_id, set()).add(future)
        return future

    def _unpark(self, order_id: str, future: asyncio.Future[None]) -> None:
        futures = self._parked.get(order_id)
        if futures is None:
            return
        futures.discard(future)
        if not futures:
            del self._parked[order_id]

    def _wake(self, order_id: str) -> None:
        for future in self._parked.pop(order_id, ()):
            if not future.done():
                future.set_result(None)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False
