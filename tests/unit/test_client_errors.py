"""Decoding rich status into typed exceptions, without a server: the aio path reads the trailer an
`AioRpcError` carries, so real `AioRpcError` values built here exercise the same code a call would."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from clients import errors


def _status(code: grpc.StatusCode, message: str, reason: str = "", **metadata: str) -> status_pb2.Status:
    status = status_pb2.Status(code=code.value[0], message=message)
    if reason:
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="orderpay", metadata=metadata))
        status.details.append(packed)
    return status


def _aio_error(
    code: grpc.StatusCode, message: str, status: status_pb2.Status | None, *extra: tuple[str, str]
) -> grpc.aio.AioRpcError:
    trailing: list[tuple[str, str | bytes]] = list(extra)
    if status is not None:
        trailing.append(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details=message)


def test_every_reason_class_is_registered_under_its_reason_and_code() -> None:
    for reason, cls in errors.ERROR_BY_REASON.items():
        assert cls.default_reason == reason
        assert issubclass(cls, errors.ERROR_BY_CODE[cls.default_code])


def test_reason_picks_the_class_and_keeps_metadata() -> None:
    status = _status(grpc.StatusCode.ABORTED, "stale", "VERSION_CONFLICT", current_version="12")

    error = errors.build_error(grpc.StatusCode.ABORTED, "stale", status, trace_id="t-1")

    assert isinstance(error, errors.VersionConflict)
    assert (error.current_version, error.trace_id, error.request_id) == (12, "t-1", "t-1")
    assert str(error) == "VERSION_CONFLICT: stale"


def test_bad_request_violations_are_kept_in_order() -> None:
    status = _status(grpc.StatusCode.INVALID_ARGUMENT, "invalid", "INVALID_ARGUMENT")
    bad = error_details_pb2.BadRequest()
    bad.field_violations.add(field="user_id", description="empty")
    bad.field_violations.add(field="quantity", description="out of range")
    packed = any_pb2.Any()
    packed.Pack(bad)
    status.details.append(packed)

    error = errors.build_error(grpc.StatusCode.INVALID_ARGUMENT, "invalid", status)

    assert isinstance(error, errors.InvalidArgument)
    assert error.field_violations == [("user_id", "empty"), ("quantity", "out of range")]


def test_missing_or_garbled_metadata_reads_as_absent() -> None:
    conflict = errors.build_error(
        grpc.StatusCode.ABORTED, "x", _status(grpc.StatusCode.ABORTED, "x", "VERSION_CONFLICT")
    )
    garbled = errors.VersionConflict("x", metadata={"current_version": "seven"})
    unpaid = errors.UnpaidOrderExists("x")

    assert isinstance(conflict, errors.VersionConflict)
    assert (conflict.current_version, garbled.current_version, unpaid.order_id) == (None, None, "")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DATA_LOSS, errors.OrderPayError),
    ],
)
def test_no_details_falls_back_to_the_code(
    code: grpc.StatusCode, expected: type[errors.OrderPayError]
) -> None:
    error = errors.build_error(code, "bare", None)

    assert type(error) is expected
    assert (error.code, error.message) == (code, "bare")


def test_aio_error_is_decoded_from_its_trailer() -> None:
    status = _status(grpc.StatusCode.FAILED_PRECONDITION, "has one", "UNPAID_ORDER_EXISTS", order_id="o-3")
    err = _aio_error(grpc.StatusCode.FAILED_PRECONDITION, "has one", status, ("x-request-id", "echoed"))

    error = errors.from_rpc_error(err, trace_id="sent")

    assert isinstance(error, errors.UnpaidOrderExists)
    assert (error.order_id, error.trace_id) == ("o-3", "echoed")


def test_aio_error_whose_details_disagree_with_the_transport_falls_back() -> None:
    # A proxy rewrote the code but passed the trailer through: trust the transport.
    status = _status(grpc.StatusCode.NOT_FOUND, "gone", "ORDER_NOT_FOUND")
    err = _aio_error(grpc.StatusCode.UNAVAILABLE, "upstream reset", status)

    error = errors.from_rpc_error(err, trace_id="sent")

    assert type(error) is errors.Unavailable
    assert (error.reason, error.trace_id) == ("UNAVAILABLE", "sent")
