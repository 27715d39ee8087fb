"""Per-call state shared by the interceptor and servicers, carried in contextvars.

grpc.aio runs every call in its own task, so each call sees its own values.
"""

from __future__ import annotations

from contextvars import ContextVar

from server.service.context import Caller
from server.serving.admission import FREE, Slot

_caller: ContextVar[Caller] = ContextVar("orderpay_caller")
_headers: ContextVar[list[tuple[str, str]]] = ContextVar("orderpay_response_headers")
_slot: ContextVar[Slot] = ContextVar("orderpay_admission_slot", default=FREE)


def begin(caller: Caller, slot: Slot = FREE) -> None:
    _caller.set(caller)
    _headers.set([("x-request-id", caller.request_id)])
    _slot.set(slot)


def current_caller() -> Caller:
    return _caller.get()


def add_response_header(key: str, value: str) -> None:
    _headers.get().append((key, value))


def response_headers() -> tuple[tuple[str, str], ...]:
    return tuple(_headers.get())


def park() -> None:
    """The call is about to wait without working (a long-poll): give its admission slot back."""
    _slot.get().release()
