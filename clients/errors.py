"""Typed exceptions for the orderpay gRPC API, chosen by `google.rpc.ErrorInfo.reason` (README § Errors).

The server sends rich status: a gRPC code plus `ErrorInfo{reason, domain: "orderpay", metadata}` and,
for validation, `BadRequest` field violations, packed in the `grpc-status-details-bin` trailer.
`from_rpc_error` turns a failed call into the exception class registered for its reason; a reason this
client does not know yet falls back to the class for its gRPC code, so callers can still catch by
category (`NotFound`, `FailedPrecondition`, ...) when the server grows new reasons.
"""

# Class names mirror the wire reasons (ORDER_NOT_FOUND -> OrderNotFound) and gRPC codes, which is the
# contract callers catch by; an "Error" suffix on each would only repeat the base class.
# ruff: noqa: N818

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "orderpay"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
REQUEST_ID_KEY = "x-request-id"


class OrderPayError(Exception):
    """Root of every failure the client raises. `reason` is the server's stable UPPER_SNAKE reason."""

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    default_reason: str = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        field_violations: Iterable[tuple[str, str]] = (),
        trace_id: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: list[tuple[str, str]] = list(field_violations)
        # The call's x-request-id: quote it when reading the server's logs.
        self.trace_id = trace_id

    @property
    def request_id(self) -> str:
        """The call's x-request-id (alias of `trace_id`; not CreateOrder's idempotency key)."""
        return self.trace_id

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(reason={self.reason!r}, code={self.code.name}, message={self.message!r})"


# Categories, one per gRPC code the API uses: the fallback for reasons this client does not know.


class InvalidArgument(OrderPayError):
    """The request broke a field rule; `field_violations` lists (field, description) pairs."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"


class Unauthenticated(OrderPayError):
    default_code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(OrderPayError):
    default_code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class NotFound(OrderPayError):
    default_code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(OrderPayError):
    default_code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(OrderPayError):
    default_code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Aborted(OrderPayError):
    default_code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class Unavailable(OrderPayError):
    """The server (or its provider) could not be reached; safe to retry with the same parameters."""

    default_code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class ResourceExhausted(OrderPayError):
    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class DeadlineExceeded(OrderPayError):
    """The call's deadline passed; the server may or may not have acted on it."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


class Cancelled(OrderPayError):
    default_code = grpc.StatusCode.CANCELLED
    default_reason = "CANCELLED"


class Internal(OrderPayError):
    default_code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"


# One class per reason of server/rpc/status.py.


class OrderNotFound(NotFound):
    default_reason = "ORDER_NOT_FOUND"


class ProductNotFound(NotFound):
    default_reason = "PRODUCT_NOT_FOUND"


class RefundNotFound(NotFound):
    default_reason = "REFUND_NOT_FOUND"


class ReconExceptionNotFound(NotFound):
    default_reason = "RECON_EXCEPTION_NOT_FOUND"


class NotificationNotFound(NotFound):
    default_reason = "NOTIFICATION_NOT_FOUND"


class IdempotencyKeyReused(AlreadyExists):
    """The request_id was used before with different parameters."""

    default_reason = "IDEMPOTENCY_KEY_REUSED"


class UnpaidOrderExists(FailedPrecondition):
    """The user already has an unpaid order for this product; `order_id` names it."""

    default_reason = "UNPAID_ORDER_EXISTS"

    @property
    def order_id(self) -> str:
        return self.metadata.get("order_id", "")


class OutOfStock(FailedPrecondition):
    default_reason = "OUT_OF_STOCK"


class InvalidStateTransition(FailedPrecondition):
    default_reason = "INVALID_STATE_TRANSITION"


class OrderNotPayable(FailedPrecondition):
    default_reason = "ORDER_NOT_PAYABLE"


class RefundExceedsPaid(FailedPrecondition):
    default_reason = "REFUND_EXCEEDS_PAID"


class ProviderRejected(FailedPrecondition):
    """WeChat Pay refused for a business reason; `provider_code` is WeChat's own code."""

    default_reason = "PROVIDER_REJECTED"

    @property
    def provider_code(self) -> str:
        return self.metadata.get("provider_code", "")


class VersionConflict(Aborted):
    """A compare-and-set on `version` lost; re-read the order and decide again."""

    default_reason = "VERSION_CONFLICT"

    @property
    def current_version(self) -> int | None:
        raw = self.metadata.get("current_version", "")
        return int(raw) if raw.lstrip("-").isdigit() else None


class ProviderUnavailable(Unavailable):
    default_reason = "PROVIDER_UNAVAILABLE"


class Overloaded(ResourceExhausted):
    default_reason = "OVERLOADED"


class Transient(Unavailable):
    """The server could not decide now (contention, database busy or unreachable); retried like any
    UNAVAILABLE, with the same parameters."""

    default_reason = "TRANSIENT"


class SubscriberNotFound(NotFound):
    """Register the subscriber first (EventService.RegisterSubscriber / `orderpay events register`)."""

    default_reason = "SUBSCRIBER_NOT_FOUND"


class PositionInFuture(InvalidArgument):
    default_reason = "POSITION_IN_FUTURE"


class UnknownEventType(InvalidArgument):
    default_reason = "UNKNOWN_EVENT_TYPE"


class FulfilmentAlreadyDecided(FailedPrecondition):
    """Confirmed or failed twice, or after the order's fulfilment was decided: nothing changed."""

    default_reason = "FULFILMENT_ALREADY_DECIDED"


class NotExternalFulfilment(FailedPrecondition):
    default_reason = "NOT_EXTERNAL_FULFILMENT"


class WebhookUrlRefused(InvalidArgument):
    """Not an http(s) URL, or plain http in production to a host that is not loopback."""

    default_reason = "WEBHOOK_URL_REFUSED"


class WebhookNotFound(NotFound):
    """The subscriber has no webhook: register it with a webhook URL first."""

    default_reason = "WEBHOOK_NOT_FOUND"


CATEGORY_CLASSES: tuple[type[OrderPayError], ...] = (
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Aborted,
    Unavailable,
    ResourceExhausted,
    DeadlineExceeded,
    Cancelled,
    Internal,
)
REASON_CLASSES: tuple[type[OrderPayError], ...] = (
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    OrderNotFound,
    ProductNotFound,
    RefundNotFound,
    ReconExceptionNotFound,
    NotificationNotFound,
    IdempotencyKeyReused,
    UnpaidOrderExists,
    OutOfStock,
    InvalidStateTransition,
    OrderNotPayable,
    RefundExceedsPaid,
    ProviderRejected,
    VersionConflict,
    ProviderUnavailable,
    Overloaded,
    Transient,
    SubscriberNotFound,
    PositionInFuture,
    UnknownEventType,
    FulfilmentAlreadyDecided,
    NotExternalFulfilment,
    WebhookUrlRefused,
    WebhookNotFound,
    Internal,
)
ERROR_BY_REASON: dict[str, type[OrderPayError]] = {cls.default_reason: cls for cls in REASON_CLASSES}
ERROR_BY_CODE: dict[grpc.StatusCode, type[OrderPayError]] = {
    cls.default_code: cls for cls in CATEGORY_CLASSES
}


@dataclass(frozen=True)
class _Details:
    """What the rich status carried beyond code and message."""

    reason: str = ""
    metadata: Mapping[str, str] | None = None
    field_violations: Sequence[tuple[str, str]] = ()


def error_class(reason: str, code: grpc.StatusCode) -> type[OrderPayError]:
    """The class for `reason`, else the category for `code`, else the root."""
    return ERROR_BY_REASON.get(reason) or ERROR_BY_CODE.get(code) or OrderPayError


def build_error(
    code: grpc.StatusCode, message: str, status: status_pb2.Status | None, trace_id: str = ""
) -> OrderPayError:
    """The typed exception for a status code, its message and the rich status (if any)."""
    details = _details_of(status) if status is not None else _Details()
    cls = error_class(details.reason, code)
    return cls(
        message,
        code=code,
        reason=details.reason or None,
        metadata=details.metadata,
        field_violations=details.field_violations,
        trace_id=trace_id,
    )


def from_rpc_error(err: grpc.RpcError, *, trace_id: str = "") -> OrderPayError:
    """Decode a failed call (sync `grpc` or `grpc.aio`) into its typed exception.

    `trace_id` is the `x-request-id` the client sent; the one the server echoed wins when present.
    """
    if isinstance(err, grpc.aio.AioRpcError):
        code, message = err.code(), err.details() or ""
        trailing = list(err.trailing_metadata() or ())
        status = _status_from_trailers(code, message, trailing)
    else:
        call: grpc.Call = err  # type: ignore[assignment]  # sync RpcErrors raised by calls are Calls
        code, message = call.code(), call.details() or ""
        trailing = list(call.trailing_metadata() or ())
        status = _status_from_sync_call(call)
    echoed = _text_value(trailing, REQUEST_ID_KEY)
    return build_error(code, message, status, echoed or trace_id)


def _status_from_sync_call(call: grpc.Call) -> status_pb2.Status | None:
    try:
        status: status_pb2.Status | None = rpc_status.from_call(call)
    except ValueError:
        # The rich status disagreed with the transport's code or message (a proxy rewrote it):
        # trust the transport and drop the details rather than raise the wrong class.
        return None
    return status


def _status_from_trailers(
    code: grpc.StatusCode, message: str, trailing: Sequence[tuple[str, str | bytes]]
) -> status_pb2.Status | None:
    """The aio twin of `rpc_status.from_call`, reading the trailer an AioRpcError already holds."""
    for key, value in trailing:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            if status.code == code.value[0] and status.message == message:
                return status
    return None


def _details_of(status: status_pb2.Status) -> _Details:
    reason, metadata = "", None
    violations: list[tuple[str, str]] = []
    for packed in status.details:
        if _is(packed, error_details_pb2.ErrorInfo):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif _is(packed, error_details_pb2.BadRequest):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    return _Details(reason=reason, metadata=metadata, field_violations=violations)


def _is(packed: any_pb2.Any, message_type: type[object]) -> bool:
    return bool(packed.Is(message_type.DESCRIPTOR))  # type: ignore[attr-defined]


def _text_value(metadata: Sequence[tuple[str, str | bytes]], key: str) -> str:
    for item_key, value in metadata:
        if item_key == key and isinstance(value, str):
            return value
    return ""
