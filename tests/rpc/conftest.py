"""An in-process gRPC server (the asyncio serving core on a thread) on 127.0.0.1:0 per backend,
over the real App."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from orderpay.v1 import order_service_pb2_grpc, pay_service_pb2_grpc, vip_service_pb2_grpc
from server.app import App
from tests.support.serving import ServingThread


@pytest.fixture(scope="module")
def grpc_server(app: App) -> Iterator[ServingThread]:
    server = ServingThread(app)
    yield server
    server.stop(1)


@pytest.fixture(scope="module")
def channel(grpc_server: ServingThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}") as ch:
        yield ch


@pytest.fixture(scope="module")
def orders(channel: grpc.Channel) -> order_service_pb2_grpc.OrderServiceStub:
    return order_service_pb2_grpc.OrderServiceStub(channel)


@pytest.fixture(scope="module")
def pay(channel: grpc.Channel) -> pay_service_pb2_grpc.PayServiceStub:
    return pay_service_pb2_grpc.PayServiceStub(channel)


@pytest.fixture(scope="module")
def vip(channel: grpc.Channel) -> vip_service_pb2_grpc.VipServiceStub:
    return vip_service_pb2_grpc.VipServiceStub(channel)
