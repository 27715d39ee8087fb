"""One interceptor: request id, auth, domain errors -> rich status, the canonical log line, metrics.

Everything runs inside the handler invocation (on the worker thread), never on gRPC's polling
thread, so contextvars and Peewee's thread-local connections belong to the call.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import structlog

from server.domain.errors import DomainError
from server.metrics import RPC_LATENCY, RPC_REQUESTS
from server.rpc import call_context
from server.rpc.auth import TokenAuthenticator, is_public
from server.rpc.status import status_for, status_for_exception
from server.service.context import Caller

log = structlog.get_logger("orderpay.rpc")
Behaviour = Callable[[Any, grpc.ServicerContext], Any]


def _request_id(metadata: dict[str, str]) -> str:
    given = metadata.get("x-request-id", "")
    return given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex


class ServerInterceptor(grpc.ServerInterceptor):
    def __init__(self, authenticator: TokenAuthenticator) -> None:
        self._auth = authenticator
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or is_public(handler_call_details.method):
            return handler
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:  # built once per method: this runs on gRPC's polling thread for every call
            wrapped = self._wrapped[method] = grpc.unary_unary_rpc_method_handler(
                self._wrap(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return wrapped

    def _wrap(self, method: str, behaviour: Behaviour) -> Behaviour:
        def invoke(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            request_id = _request_id(metadata)
            trailers = [("x-request-id", request_id)]
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(
                request_id=request_id, rpc=method, **_business_ids(request)
            )
            code = grpc.StatusCode.OK
            try:
                role = self._auth.authorize(method, metadata.get("authorization"))
                call_context.begin(Caller(actor=role, request_id=request_id))
                response = behaviour(request, context)
                order = getattr(response, "order", None)
                if order is not None and order.order_id:
                    structlog.contextvars.bind_contextvars(order_id=order.order_id)
                context.send_initial_metadata(call_context.response_headers())
            except DomainError as error:
                status = status_for(error, trailers)
                code = status.code
                context.abort_with_status(status)
            except Exception as error:
                aborted = _code_of(context)
                if aborted is not None:  # the servicer aborted on purpose (e.g. UNIMPLEMENTED)
                    code = aborted
                    raise
                status = status_for_exception(error, trailers)  # transient database faults: UNAVAILABLE
                log.exception("rpc.unhandled" if status.code is grpc.StatusCode.INTERNAL else "rpc.transient")
                code = status.code
                context.abort_with_status(status)
            else:
                return response
            finally:
                _log_line(method, code, started, context)

        return invoke


_ID_FIELDS = ("order_id", "user_id", "out_refund_no")


def _business_ids(request: Any) -> dict[str, str]:
    """The ids an operator greps for, from whichever of them this request carries."""
    return {name: value for name in _ID_FIELDS if (value := getattr(request, name, ""))}


def _code_of(context: grpc.ServicerContext) -> grpc.StatusCode | None:
    code: grpc.StatusCode | None = context.code()  # type: ignore[attr-defined]  # grpcio >= 1.38, not in stubs
    return code


def _log_line(method: str, code: grpc.StatusCode, started: float, context: grpc.ServicerContext) -> None:
    elapsed = time.perf_counter() - started
    RPC_LATENCY.labels(method).observe(elapsed)
    RPC_REQUESTS.labels(method, code.name).inc()
    log.info("rpc", code=code.name, duration_ms=round(elapsed * 1000, 2), peer=context.peer())
