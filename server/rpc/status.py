"""The one table from error classes to gRPC status codes, and the rich status built from it.

Keyed by class, not by reason string: every `DomainError` subclass, wherever it is declared, has a row
(tests/unit/test_status_table.py walks them all). A class without a row of its own takes its nearest
ancestor's code, so a forgotten row degrades to the parent's code, never to a silent INTERNAL.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from server.adapters.faults import TRANSIENT_DATABASE_ERRORS
from server.domain import errors as e
from server.domain.operations import NotificationNotFoundError
from server.service.errors import TransientError
from server.service.reconciliation import BillNotReadyError

DOMAIN = "orderpay"
GENERIC_INTERNAL_MESSAGE = "internal error; quote the request id when reporting it"
Code = grpc.StatusCode

STATUS_BY_CLASS: dict[type[e.DomainError], grpc.StatusCode] = {
    e.DomainError: Code.INTERNAL,
    e.InvalidArgumentError: Code.INVALID_ARGUMENT,
    e.UnauthenticatedError: Code.UNAUTHENTICATED,
    e.PermissionDeniedError: Code.PERMISSION_DENIED,
    e.OrderNotFoundError: Code.NOT_FOUND,
    e.ProductNotFoundError: Code.NOT_FOUND,
    e.RefundNotFoundError: Code.NOT_FOUND,
    e.ReconExceptionNotFoundError: Code.NOT_FOUND,
    NotificationNotFoundError: Code.NOT_FOUND,  # issue 13: operator replay
    e.IdempotencyKeyReusedError: Code.ALREADY_EXISTS,
    e.UnpaidOrderExistsError: Code.FAILED_PRECONDITION,
    e.OutOfStockError: Code.FAILED_PRECONDITION,
    e.InvalidStateTransitionError: Code.FAILED_PRECONDITION,
    e.OrderNotPayableError: Code.FAILED_PRECONDITION,
    e.RefundExceedsPaidError: Code.FAILED_PRECONDITION,
    e.ProviderRejectedError: Code.FAILED_PRECONDITION,
    e.VersionConflictError: Code.ABORTED,
    # issue 19: the event feed
    e.SubscriberNotFoundError: Code.NOT_FOUND,
    e.PositionInFutureError: Code.INVALID_ARGUMENT,
    e.UnknownEventTypeError: Code.INVALID_ARGUMENT,
    e.FulfilmentAlreadyDecidedError: Code.FAILED_PRECONDITION,
    e.NotExternalFulfilmentError: Code.FAILED_PRECONDITION,
    e.WebhookUrlRefusedError: Code.INVALID_ARGUMENT,
    e.WebhookNotFoundError: Code.NOT_FOUND,
    e.ProviderUnavailableError: Code.UNAVAILABLE,
    e.OverloadedError: Code.RESOURCE_EXHAUSTED,
    # Contention or a busy/unreachable database: nothing was decided, the same call may succeed later.
    # UNAVAILABLE, not ABORTED: clients retry UNAVAILABLE on every RPC, while ABORTED means "your
    # compare-and-set lost, decide again" (VERSION_CONFLICT).
    TransientError: Code.UNAVAILABLE,
    BillNotReadyError: Code.UNAVAILABLE,  # WeChat is still writing the day's bill
}


def code_for(error: e.DomainError) -> grpc.StatusCode:
    """The status code of the error's class, else of its nearest ancestor with a row."""
    for cls in type(error).__mro__:
        code = STATUS_BY_CLASS.get(cls)
        if code is not None:
            return code
    return Code.INTERNAL


def domain_error_of(error: Exception) -> e.DomainError | None:
    """What an exception means to a caller: itself, TRANSIENT for a transient database fault, else None."""
    if isinstance(error, e.DomainError):
        return error
    if isinstance(error, TRANSIENT_DATABASE_ERRORS):
        return TransientError("the database is busy or unreachable; retry")
    return None


class RichStatus(grpc.Status):
    """What `context.abort_with_status` takes: code, message and the binary details trailer."""

    def __init__(
        self, code: grpc.StatusCode, details: str, trailing_metadata: Sequence[tuple[str, str | bytes]]
    ):
        self.code = code
        self.details = details
        self.trailing_metadata = tuple(trailing_metadata)


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def status_for(error: e.DomainError | None, extra_trailers: Sequence[tuple[str, str]] = ()) -> RichStatus:
    """The rich status for a domain error; None means an unexpected failure (generic INTERNAL)."""
    reason = error.reason if error else "INTERNAL"
    code = code_for(error) if error else Code.INTERNAL
    message = error.message if error and code is not grpc.StatusCode.INTERNAL else GENERIC_INTERNAL_MESSAGE
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=error.metadata if error else {})
    details = [_pack(info)]
    if isinstance(error, e.InvalidArgumentError):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
        details.append(_pack(bad))
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    trailers: list[tuple[str, str | bytes]] = [("grpc-status-details-bin", status.SerializeToString())]
    trailers.extend(extra_trailers)
    return RichStatus(code, message, trailers)


def status_for_exception(error: Exception, extra_trailers: Sequence[tuple[str, str]] = ()) -> RichStatus:
    """The rich status for anything a handler raised (transient database faults are retryable)."""
    return status_for(domain_error_of(error), extra_trailers)
