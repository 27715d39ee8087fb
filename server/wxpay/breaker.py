"""A circuit breaker around WeChat Pay calls that never holds a lock across network I/O.

State, counters and transitions live in `pybreaker` (so its listeners and state names apply), but
`pybreaker.CircuitBreaker.call` holds one RLock for the whole guarded call, which would serialise every
gRPC worker thread behind the slowest request. So callers ask `admit()` before a request and report
the outcome afterwards; only those bookkeeping steps are locked.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pybreaker

CLOSED = pybreaker.STATE_CLOSED
OPEN = pybreaker.STATE_OPEN
HALF_OPEN = pybreaker.STATE_HALF_OPEN


class ProviderBreaker:
    """Opens after `fail_max` consecutive failures; after `reset_s` lets exactly one probe through."""

    def __init__(self, *, fail_max: int, reset_s: float, name: str = "wxpay") -> None:
        self._storage = pybreaker.CircuitMemoryStorage(CLOSED)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max, reset_timeout=reset_s, state_storage=self._storage, name=name
        )
        self._lock = threading.Lock()
        self._probe_in_flight = False

    @property
    def state(self) -> str:
        """`closed`, `open` or `half-open` (pybreaker's names), for metrics."""
        return str(self._breaker.current_state)

    def admit(self) -> bool:
        """May a request go out now? In half-open, only the single probe may."""
        with self._lock:
            state = self._breaker.current_state
            if state == CLOSED:
                return True
            if state == OPEN:
                if not self._reset_elapsed():
                    return False
                self._breaker.half_open()
            if self._probe_in_flight:
                return False
            self._probe_in_flight = True
            return True

    def record_success(self) -> None:
        """The provider answered (a business rejection counts: the provider is up)."""
        with self._lock:
            self._probe_in_flight = False
            self._storage.reset_counter()
            if self._breaker.current_state != CLOSED:
                self._breaker.close()

    def record_failure(self) -> None:
        with self._lock:
            self._probe_in_flight = False
            self._storage.increment_counter()
            state = self._breaker.current_state
            if state == HALF_OPEN or (state == CLOSED and self._storage.counter >= self._breaker.fail_max):
                self._breaker.open()

    def release(self) -> None:
        """Neither outcome (a local bug, an interrupted call): free the probe slot, count nothing."""
        with self._lock:
            self._probe_in_flight = False

    def _reset_elapsed(self) -> bool:
        opened_at = self._storage.opened_at
        reset = timedelta(seconds=self._breaker.reset_timeout)
        return opened_at is None or datetime.now(UTC) >= opened_at + reset
