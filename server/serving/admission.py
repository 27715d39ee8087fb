"""Admission control: a bounded number of calls doing work in one process; beyond it, refuse at once.

Refusing fast (RESOURCE_EXHAUSTED / OVERLOADED) beats queueing: the caller's retry goes to another
process, and nothing waits here holding memory. Health, reflection and cheap reads are exempt, and a
long-poll gives its slot back while it is parked (a parked waiter costs no work).
All of it runs on the event loop thread, so plain integers suffice.
"""

from __future__ import annotations

from server.domain.errors import OverloadedError
from server.metrics import OVERLOADED

# Never refused: probes, and reads that cost one indexed query (GetOrder parks without a slot).
EXEMPT_METHODS = frozenset(
    {
        "/orderpay.v1.VipService/ListPlans",
        "/orderpay.v1.VipService/GetMembership",
        "/orderpay.v1.OrderService/GetOrder",
    }
)
EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def is_exempt(method: str) -> bool:
    return method in EXEMPT_METHODS or method.startswith(EXEMPT_PREFIXES)


class Slot:
    """One admitted call; `release()` is idempotent (parking releases early, the call's end again)."""

    __slots__ = ("_admission",)

    def __init__(self, admission: Admission | None) -> None:
        self._admission = admission

    def release(self) -> None:
        if self._admission is not None:
            self._admission._in_flight -= 1  # the slot is the admission's own token
            self._admission = None


FREE = Slot(None)  # what exempt calls hold: releasing it does nothing


class Admission:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the in-flight limit must be at least 1")
        self.limit = limit
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def enter(self, method: str) -> Slot:
        """A slot for this call, or OverloadedError when the process is at its limit."""
        if is_exempt(method):
            return FREE
        if self._in_flight >= self.limit:
            OVERLOADED.inc()
            raise OverloadedError(
                f"server is at its limit of {self.limit} calls in flight; retry with backoff",
                metadata={"limit": str(self.limit)},
            )
        self._in_flight += 1
        return Slot(self)
