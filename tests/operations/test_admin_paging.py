"""The 2026-12 audit's L1 over a real gRPC server: a negative page_size is clamped from below (it read
every row on SQLite and was INTERNAL on PostgreSQL), and forged admin page tokens are INVALID_ARGUMENT,
never INTERNAL."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from orderpay.v1 import admin_service_pb2 as pb
from orderpay.v1 import admin_service_pb2_grpc, recon_service_pb2, recon_service_pb2_grpc
from server.app import App
from tests.support.serving import ServingThread

AUTH = (("authorization", "Bearer test-admin-token"),)


@pytest.fixture
def channel(app: App) -> Iterator[grpc.Channel]:
    running = ServingThread(app)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as opened:
        yield opened
    running.stop(1)


def _calls(channel: grpc.Channel, size: int) -> dict[str, Callable[[], Any]]:
    admin = admin_service_pb2_grpc.AdminServiceStub(channel)
    recon = recon_service_pb2_grpc.ReconServiceStub(channel)
    return {
        "ListAllOrders": lambda: admin.ListAllOrders(pb.ListAllOrdersRequest(page_size=size), metadata=AUTH),
        "ListNotifications": lambda: admin.ListNotifications(
            pb.ListNotificationsRequest(page_size=size), metadata=AUTH
        ),
        "ListRefunds": lambda: admin.ListRefunds(pb.ListRefundsRequest(page_size=size), metadata=AUTH),
        "ListJobs": lambda: admin.ListJobs(pb.ListJobsRequest(page_size=size), metadata=AUTH),
        "ListReconExceptions": lambda: recon.ListReconExceptions(
            recon_service_pb2.ListReconExceptionsRequest(page_size=size), metadata=AUTH
        ),
    }


@pytest.mark.parametrize("size", [-1, -(2**31), 2**31 - 1])
def test_every_admin_listing_clamps_page_size_from_both_sides(channel: grpc.Channel, size: int) -> None:
    for name, call in _calls(channel, size).items():
        try:
            call()
        except grpc.RpcError as error:  # pragma: no cover - the failure message says which call
            pytest.fail(f"{name}(page_size={size}) -> {error.code()}: {error.details()}")


def _token(when: object, seq: object) -> str:
    return base64.urlsafe_b64encode(json.dumps([when, seq]).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        _token("2026-12-01T00:00:00+00:00", 10**30),
        "WyIyMDI2LTEyLTAxVDAwOjAwOjAwKzAwOjAwIiwgMWUzMDhd",  # seq 1e308
        base64.urlsafe_b64encode(b'["2026-12-01T00:00:00+00:00", Infinity]').decode(),
        _token("2026-12-01T00:00:00+00:00", -1),
        _token("2026-12-01T00:00:00+00:00", 1.5),
        _token("2026-12-01T00:00:00+00:00", True),
        _token("99999-01-01", 1),
    ],
)
def test_a_forged_admin_page_token_is_invalid_argument(channel: grpc.Channel, token: str) -> None:
    admin = admin_service_pb2_grpc.AdminServiceStub(channel)
    with pytest.raises(grpc.RpcError) as refused:
        admin.ListAllOrders(pb.ListAllOrdersRequest(page_token=token), metadata=AUTH)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
