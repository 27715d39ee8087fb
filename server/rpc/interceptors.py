"""One grpc.aio interceptor: request id, auth, admission, domain errors -> rich status, the canonical
log line, metrics.

It runs on the event loop inside each call's own task, so contextvars belong to the call. Public
methods (health, reflection) skip auth; every other method, whatever its arity, is authenticated.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from server.domain.errors import DomainError
from server.log_setup import CALL_FIELDS, CALLS
from server.metrics import RPC_LATENCY, RPC_REQUESTS
from server.rpc import call_context
from server.rpc.auth import TokenAuthenticator, is_public
from server.rpc.status import RichStatus, domain_error_of, status_for, status_for_exception
from server.service.context import Caller
from server.serving.admission import FREE, Admission

log = structlog.get_logger("orderpay.rpc")
Behaviour = Callable[..., Any]  # an async servicer method (grpc's stubs type handlers as sync)
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any] | None"]]


def _request_id(metadata: dict[str, str]) -> str:
    given = metadata.get("x-request-id", "")
    return given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: TokenAuthenticator, admission: Admission) -> None:
        self._auth = authenticator
        self._admission = admission
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or is_public(method):
            return handler
        wrapped = self._wrapped[method] = self._wrap_handler(method, handler)  # once per method
        return wrapped

    def _wrap_handler(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._wrap(method, handler.unary_unary), **codec)
        # No streaming method is public API today; if one appears it is still authenticated.
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._authenticated_stream(method, handler.unary_stream), **codec
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._authenticated_call(method, handler.stream_unary), **codec
            )
        assert handler.stream_stream is not None  # noqa: S101 - one of the four is always set
        return grpc.stream_stream_rpc_method_handler(
            self._authenticated_stream(method, handler.stream_stream), **codec
        )

    def _wrap(self, method: str, behaviour: Behaviour) -> Behaviour:
        latency, auth, admission = RPC_LATENCY.labels(method), self._auth, self._admission
        counters: dict[grpc.StatusCode, Any] = {}

        async def invoke(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:  # noqa: RET503
            started = time.perf_counter()
            metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
            request_id = _request_id(metadata)
            fields: dict[str, Any] = {"request_id": request_id, "rpc": method}  # canonical line, every line
            CALL_FIELDS.set(fields)
            slot = FREE

            def done(code: grpc.StatusCode, reason: str | None = None) -> None:  # one line per call
                slot.release()
                elapsed = time.perf_counter() - started
                latency.observe(elapsed)
                counter = counters.get(code)
                if counter is None:
                    counter = counters[code] = RPC_REQUESTS.labels(method, code.name)
                counter.inc()
                if CALLS.enabled:  # queued; a writer thread renders and writes it (server.log_setup)
                    fields["code"], fields["duration_ms"] = code.name, round(elapsed * 1000, 2)
                    if reason:  # ErrorInfo's reason: which NOT_FOUND
                        fields["reason"] = reason
                    CALLS.emit(fields, time.time())

            try:
                role = auth.authorize(method, metadata.get("authorization"))
                _business_ids(request, fields)  # only an authenticated caller's ids, only short ones
                slot = admission.enter(method)
                call_context.begin(Caller(actor=role, request_id=request_id), slot)
                response = await behaviour(request, context)
                await context.send_initial_metadata(call_context.response_headers())
            except DomainError as error:
                status, reason = status_for(error, [("x-request-id", request_id)]), error.reason
            except asyncio.CancelledError:  # the caller went away: not an error of ours
                done(grpc.StatusCode.CANCELLED)
                raise
            except grpc.aio.AbortError:  # the servicer aborted on purpose (e.g. UNIMPLEMENTED)
                done(context.code())
                raise
            except Exception as error:  # noqa: BLE001 - logged with its traceback by _unexpected
                status, reason = _unexpected(error, method, request_id)
            else:
                order = getattr(response, "order", None)
                if order is not None and order.order_id:
                    fields["order_id"] = order.order_id
                done(grpc.StatusCode.OK)
                return response
            done(status.code, reason)
            await context.abort_with_status(status)  # raises: the call ends here

        return invoke

    def _authorize(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        return self._auth.authorize(method, metadata.get("authorization"))

    def _authenticated_call(self, method: str, behaviour: Behaviour) -> Behaviour:
        async def invoke(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                self._authorize(method, context)
            except DomainError as error:
                await context.abort_with_status(status_for(error))
            return await behaviour(request, context)

        return invoke

    def _authenticated_stream(
        self, method: str, behaviour: Callable[..., Any]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def invoke(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            try:
                role = self._authorize(method, context)
            except DomainError as error:
                await context.abort_with_status(status_for(error))
            call_context.begin(Caller(actor=role, request_id=uuid.uuid4().hex))
            try:
                async for item in behaviour(request, context):
                    yield item
            except DomainError as error:  # bad input to a stream (e.g. Watch's filter) is a status too
                await context.abort_with_status(status_for(error))
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as error:  # a transient database fault is UNAVAILABLE: resume and retry
                log.warning("rpc.stream_failed", rpc=method, exc_info=True)
                await context.abort_with_status(status_for_exception(error))

        return invoke


_ID_FIELDS = ("order_id", "user_id", "out_refund_no")
MAX_LOGGED_ID = 64  # ids are at most 64 characters; anything longer is cut, never logged whole


def _business_ids(request: Any, fields: dict[str, Any]) -> None:
    """The ids an operator greps for, from whichever of them this request carries (capped)."""
    for name in _ID_FIELDS:
        value = getattr(request, name, "")
        if isinstance(value, str) and value:
            fields[name] = value[:MAX_LOGGED_ID] if value.isprintable() else repr(value[:MAX_LOGGED_ID])


def _unexpected(error: Exception, method: str, request_id: str) -> tuple[RichStatus, str]:
    """The status and reason of an exception no use case raised on purpose, logged with its traceback.
    A transient database fault is UNAVAILABLE (retryable), not a bug."""
    status = status_for_exception(error, [("x-request-id", request_id)])
    unhandled = status.code is grpc.StatusCode.INTERNAL
    event = "rpc.unhandled" if unhandled else "rpc.transient"
    log.error(event, rpc=method, request_id=request_id, exc_info=error)
    known = domain_error_of(error)
    return status, known.reason if known is not None else "INTERNAL"
