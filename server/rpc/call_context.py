"""Per-call state shared by the interceptor and servicers, carried in contextvars."""

from __future__ import annotations

from contextvars import ContextVar

from server.service.context import Caller

_caller: ContextVar[Caller] = ContextVar("orderpay_caller")
_headers: ContextVar[list[tuple[str, str]]] = ContextVar("orderpay_response_headers")


def begin(caller: Caller) -> None:
    _caller.set(caller)
    _headers.set([("x-request-id", caller.request_id)])


def current_caller() -> Caller:
    return _caller.get()


def add_response_header(key: str, value: str) -> None:
    _headers.get().append((key, value))


def response_headers() -> tuple[tuple[str, str], ...]:
    return tuple(_headers.get())
