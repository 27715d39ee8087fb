"""The one reason -> status table, and what an unexpected failure looks like on the wire."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from server.domain import errors
from server.domain.errors import DomainError, FieldViolation, InvalidArgumentError
from server.rpc.status import GENERIC_INTERNAL_MESSAGE, REASON_TO_CODE, status_for


def all_error_classes() -> list[type[DomainError]]:
    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, DomainError)]


def test_every_domain_reason_has_a_status_code() -> None:
    assert {c.reason for c in all_error_classes()} <= set(REASON_TO_CODE)


def test_spec_codes() -> None:
    assert REASON_TO_CODE["IDEMPOTENCY_KEY_REUSED"] is grpc.StatusCode.ALREADY_EXISTS
    assert REASON_TO_CODE["VERSION_CONFLICT"] is grpc.StatusCode.ABORTED
    assert REASON_TO_CODE["PROVIDER_UNAVAILABLE"] is grpc.StatusCode.UNAVAILABLE
    assert REASON_TO_CODE["OVERLOADED"] is grpc.StatusCode.RESOURCE_EXHAUSTED
    for reason in ("UNPAID_ORDER_EXISTS", "OUT_OF_STOCK", "INVALID_STATE_TRANSITION", "REFUND_EXCEEDS_PAID"):
        assert REASON_TO_CODE[reason] is grpc.StatusCode.FAILED_PRECONDITION


def _details(status: grpc.Status) -> status_pb2.Status:
    blob = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(blob, bytes)
    return status_pb2.Status.FromString(blob)


def test_validation_carries_field_violations() -> None:
    status = status_for(InvalidArgumentError([FieldViolation("quantity", "must be between 1 and 999")]))
    details = _details(status)
    bad = error_details_pb2.BadRequest()
    assert details.details[1].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("quantity", "must be between 1 and 999")
    ]


def test_unexpected_failures_leak_nothing() -> None:
    status = status_for(None, [("x-request-id", "r1")])
    assert status.code is grpc.StatusCode.INTERNAL
    assert status.details == GENERIC_INTERNAL_MESSAGE
    info = error_details_pb2.ErrorInfo()
    assert _details(status).details[0].Unpack(info)
    assert (info.reason, info.domain) == ("INTERNAL", "orderpay")
    assert ("x-request-id", "r1") in status.trailing_metadata
