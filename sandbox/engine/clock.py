"""The sandbox's one source of "now": the wall clock plus an offset that only ever grows.

Everything time-driven in the sandbox reads it: prepay validity, `time_expire`, bill availability and
bill days, download-token lifetimes, `success_time` / `create_time`, notification `create_time`.
`POST /sandbox/v1/clock` moves it forward (never back), so a test or a demo can reach "10:00 the next
day" in a second.

One thing deliberately follows the *wall* clock: the 5-minute freshness window of signatures (the
merchant's `Authorization` timestamp, `Wechatpay-Timestamp` on answers and notifications). A merchant's
server clock is not advanced by our control call, and the public SDKs sign with their own `time.time()`;
checking their timestamps against a clock moved 26 h ahead would only produce `SIGN_ERROR`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ClockError(ValueError):
    """A request to move the clock backwards, or a value that is not a time."""


class SandboxClock:
    """Callable like a plain clock (`clock()` → aware UTC datetime), so every reader takes it as one."""

    def __init__(self, wall: WallClock = utc_now, start: datetime | None = None) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        if start is not None:
            self._offset = _aware(start) - wall()

    def __call__(self) -> datetime:
        return self.now()

    def now(self) -> datetime:
        return self._wall() + self._offset

    def wall(self) -> datetime:
        """Real time: only for signature freshness windows (see the module note)."""
        return self._wall()

    @property
    def offset(self) -> timedelta:
        return self._offset

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ClockError("the sandbox clock never goes back")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
            return self.now()

    def set(self, when: datetime) -> datetime:
        """Jump forward to `when`; an earlier time is refused (a bill once served stays served)."""
        when = _aware(when)
        with self._lock:
            now = self._wall() + self._offset
            if when < now:
                raise ClockError(f"the sandbox clock never goes back (now {now.isoformat()})")
            self._offset += when - now
            return when


def as_sandbox_clock(clock: WallClock | SandboxClock) -> SandboxClock:
    """A plain clock (tests' fakes) becomes the wall clock of a sandbox clock with no offset."""
    return clock if isinstance(clock, SandboxClock) else SandboxClock(clock)


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ClockError("a time needs an offset (RFC 3339)")
    return when.astimezone(UTC)
