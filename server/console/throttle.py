"""Console sign-in throttle (the 2026-12 audit's L3: 300 wrong tokens in 1.2 s, no signal to anyone).

Per peer address: the first `free` failures cost nothing; then each failure locks the address out for
a doubling delay (1 s, 2 s, 4 s ... up to `max_lock`), during which every attempt, the right token
included, is refused unread. Every failure counts in `orderpay_console_signin_failed_total`; the
`free`-th failure and every tenth after it log a WARNING. A success clears the address.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from server.domain.clock import Clock
from server.metrics import CONSOLE_SIGNIN_FAILED

log = structlog.get_logger("orderpay.console")

_MAX_PEERS = 10_000  # beyond this the oldest are forgotten: memory stays bounded under a spray


@dataclass
class _Peer:
    failures: int = 0
    locked_until: datetime | None = None


class SignInThrottle:
    def __init__(self, clock: Clock, *, free: int = 5, max_lock: timedelta = timedelta(minutes=15)) -> None:
        self._clock, self._free, self._max_lock = clock, free, max_lock
        self._peers: dict[str, _Peer] = {}
        self._lock = threading.Lock()

    def locked_for(self, peer: str) -> float:
        """Seconds this peer must still wait; 0 when it may try."""
        with self._lock:
            state = self._peers.get(peer)
            if state is None or state.locked_until is None:
                return 0.0
            return max(0.0, (state.locked_until - self._clock()).total_seconds())

    def failed(self, peer: str) -> None:
        CONSOLE_SIGNIN_FAILED.inc()
        with self._lock:
            state = self._peers.pop(peer, None) or _Peer()
            self._peers[peer] = state  # most recent last
            if len(self._peers) > _MAX_PEERS:
                del self._peers[next(iter(self._peers))]
            state.failures += 1
            over = state.failures - self._free
            if over >= 0:
                lock = min(timedelta(seconds=2 ** min(over, 20)), self._max_lock)
                state.locked_until = self._clock() + lock
            failures = state.failures
        if failures == self._free or (failures > self._free and failures % 10 == 0):
            log.warning("console.signin_failing", peer=peer, failures=failures)

    def succeeded(self, peer: str) -> None:
        with self._lock:
            self._peers.pop(peer, None)
