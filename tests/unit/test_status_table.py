"""The one class -> status table, checked against every DomainError subclass and the client's table,
and what an unexpected or transient failure looks like on the wire."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import grpc
import peewee as pw
import pytest
from google.rpc import error_details_pb2, status_pb2
from playhouse.pool import MaxConnectionsExceeded

import server
from clients.errors import ERROR_BY_REASON
from orderpay.v1 import order_service_pb2, pay_service_pb2, vip_service_pb2
from server.domain.errors import DomainError, FieldViolation, InvalidArgumentError
from server.rpc.status import (
    GENERIC_INTERNAL_MESSAGE,
    STATUS_BY_CLASS,
    code_for,
    status_for,
    status_for_exception,
)
from server.service.errors import TransientError


def _subclasses(cls: type[DomainError]) -> Iterator[type[DomainError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def all_error_classes() -> list[type[DomainError]]:
    """Every DomainError subclass declared anywhere under server/ (each module imported first)."""
    for module in pkgutil.walk_packages(server.__path__, "server."):
        importlib.import_module(module.name)
    return [DomainError, *(c for c in _subclasses(DomainError) if c.__module__.startswith("server."))]


def test_every_error_class_has_its_own_row() -> None:
    classes = all_error_classes()
    assert TransientError in classes
    assert [c.__qualname__ for c in classes if c not in STATUS_BY_CLASS] == []


def test_server_and_client_tables_agree() -> None:
    server_table = {cls.reason: STATUS_BY_CLASS[cls] for cls in all_error_classes()}
    client_table = {reason: cls.default_code for reason, cls in ERROR_BY_REASON.items()}
    assert server_table == client_table


def test_spec_codes() -> None:
    def code(reason: str) -> grpc.StatusCode:
        return next(code for cls, code in STATUS_BY_CLASS.items() if cls.reason == reason)

    assert code("IDEMPOTENCY_KEY_REUSED") is grpc.StatusCode.ALREADY_EXISTS
    assert code("VERSION_CONFLICT") is grpc.StatusCode.ABORTED
    assert code("PROVIDER_UNAVAILABLE") is grpc.StatusCode.UNAVAILABLE
    assert code("OVERLOADED") is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert code("TRANSIENT") is grpc.StatusCode.UNAVAILABLE
    for reason in ("UNPAID_ORDER_EXISTS", "OUT_OF_STOCK", "INVALID_STATE_TRANSITION", "REFUND_EXCEEDS_PAID"):
        assert code(reason) is grpc.StatusCode.FAILED_PRECONDITION


def test_a_class_without_a_row_takes_its_parents_code() -> None:
    class LocalVariantError(TransientError):
        reason = "TRANSIENT"

    assert code_for(LocalVariantError("x")) is grpc.StatusCode.UNAVAILABLE


def test_every_rpc_is_unary() -> None:
    """The interceptor authenticates unary-unary handlers; a streaming RPC must not slip past it."""
    streaming = [
        f"{service.full_name}/{method.name}"
        for module in (order_service_pb2, pay_service_pb2, vip_service_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if method.client_streaming or method.server_streaming
    ]
    assert streaming == []


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


def test_contention_is_retryable_with_its_message() -> None:
    status = status_for(TransientError("order kept changing while recording the refund"))
    assert status.code is grpc.StatusCode.UNAVAILABLE
    assert status.details == "order kept changing while recording the refund"
    info = error_details_pb2.ErrorInfo()
    assert _details(status).details[0].Unpack(info)
    assert info.reason == "TRANSIENT"


@pytest.mark.parametrize(
    "fault",
    [
        pw.OperationalError("database is locked"),
        pw.InterfaceError("connection already closed"),
        MaxConnectionsExceeded("Exceeded maximum connections."),
    ],
)
def test_transient_database_faults_are_retryable(fault: Exception) -> None:
    status = status_for_exception(fault, [("x-request-id", "r2")])
    assert status.code is grpc.StatusCode.UNAVAILABLE
    info = error_details_pb2.ErrorInfo()
    assert _details(status).details[0].Unpack(info)
    assert info.reason == "TRANSIENT"
    assert "locked" not in status.details  # the driver's text stays in the log


def test_other_exceptions_are_internal() -> None:
    status = status_for_exception(pw.IntegrityError("UNIQUE constraint failed: secret"))
    assert (status.code, status.details) == (grpc.StatusCode.INTERNAL, GENERIC_INTERNAL_MESSAGE)
