"""The one table from error reasons to gRPC status codes, and the rich status built from it."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from server.domain.errors import DomainError, InvalidArgumentError

DOMAIN = "orderpay"
GENERIC_INTERNAL_MESSAGE = "internal error; quote the request id when reporting it"

REASON_TO_CODE: dict[str, grpc.StatusCode] = {
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
    "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "ORDER_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "PRODUCT_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "REFUND_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "RECON_EXCEPTION_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "IDEMPOTENCY_KEY_REUSED": grpc.StatusCode.ALREADY_EXISTS,
    "UNPAID_ORDER_EXISTS": grpc.StatusCode.FAILED_PRECONDITION,
    "OUT_OF_STOCK": grpc.StatusCode.FAILED_PRECONDITION,
    "INVALID_STATE_TRANSITION": grpc.StatusCode.FAILED_PRECONDITION,
    "ORDER_NOT_PAYABLE": grpc.StatusCode.FAILED_PRECONDITION,
    "REFUND_EXCEEDS_PAID": grpc.StatusCode.FAILED_PRECONDITION,
    "PROVIDER_REJECTED": grpc.StatusCode.FAILED_PRECONDITION,
    "VERSION_CONFLICT": grpc.StatusCode.ABORTED,
    "PROVIDER_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "OVERLOADED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "INTERNAL": grpc.StatusCode.INTERNAL,
}


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


def status_for(error: DomainError | None, extra_trailers: Sequence[tuple[str, str]] = ()) -> RichStatus:
    """The rich status for a domain error; None means an unexpected failure (generic INTERNAL)."""
    reason = error.reason if error else "INTERNAL"
    code = REASON_TO_CODE.get(reason, grpc.StatusCode.INTERNAL)
    message = error.message if error and code is not grpc.StatusCode.INTERNAL else GENERIC_INTERNAL_MESSAGE
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=error.metadata if error else {})
    details = [_pack(info)]
    if isinstance(error, InvalidArgumentError):
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
