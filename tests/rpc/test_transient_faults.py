"""A database fault inside a handler reaches the client as a retryable TRANSIENT / UNAVAILABLE, through
the real interceptor, and the client retries it; anything else stays a generic INTERNAL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import peewee as pw
import pytest

from clients import errors
from clients.client import OrderPayClient
from orderpay.v1 import (
    order_service_pb2_grpc,
    pay_service_pb2_grpc,
    vip_service_pb2,
    vip_service_pb2_grpc,
)
from server.rpc.server import Servicers
from tests.support.serving import GrpcThread
from tests.support.settings import settings_for


@dataclass
class FlakyVip(vip_service_pb2_grpc.VipServiceServicer):
    """ListPlans raises the scripted faults in turn, then answers."""

    faults: list[Exception] = field(default_factory=list)
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def ListPlans(self, request, context):  # noqa: N802 - gRPC method name
        with self.lock:
            self.calls += 1
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            raise fault
        return vip_service_pb2.ListPlansResponse(plans=[vip_service_pb2.Plan(product_id="vip-month")])


@pytest.fixture
def vip() -> FlakyVip:
    return FlakyVip()


@pytest.fixture
def served(vip: FlakyVip, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcThread]:
    settings = settings_for(f"sqlite:///{tmp_path_factory.mktemp('unused')}/x.db")
    servicers = Servicers(
        order=order_service_pb2_grpc.OrderServiceServicer(),
        pay=pay_service_pb2_grpc.PayServiceServicer(),
        vip=vip,
    )
    server = GrpcThread(settings, servicers)
    yield server
    server.stop(0)


def _client(server: GrpcThread, attempts: int) -> OrderPayClient:
    return OrderPayClient(
        f"127.0.0.1:{server.port}", token="test-bff-token", max_attempts=attempts, backoff_base=0.001
    )


def test_a_locked_database_is_retried_by_the_client(served: GrpcThread, vip: FlakyVip) -> None:
    vip.faults += [pw.OperationalError("database is locked"), pw.InterfaceError("connection closed")]

    with _client(served, attempts=3) as client:
        plans = client.list_plans()

    assert [p.product_id for p in plans] == ["vip-month"]
    assert vip.calls == 3


def test_a_fault_that_persists_raises_transient(served: GrpcThread, vip: FlakyVip) -> None:
    vip.faults.append(pw.OperationalError("could not connect to server"))

    with _client(served, attempts=1) as client, pytest.raises(errors.Transient) as caught:
        client.list_plans()

    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    assert caught.value.reason == "TRANSIENT"
    assert "could not connect" not in caught.value.message


def test_a_bug_is_a_generic_internal(served: GrpcThread, vip: FlakyVip) -> None:
    vip.faults.append(KeyError("secret"))

    with _client(served, attempts=3) as client, pytest.raises(errors.Internal) as caught:
        client.list_plans()

    assert "secret" not in caught.value.message
    assert vip.calls == 1
