"""Optional TLS and mutual TLS, configured by Settings alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest

from orderpay.v1 import vip_service_pb2, vip_service_pb2_grpc
from server.app import App
from tests.support.serving import ServingThread
from tests.support.tls import Pki, make_pki
from tests.support.tokens import BFF


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_server(app: App, pki: Pki) -> Iterator[ServingThread]:
    settings = app.settings.with_overrides(
        grpc_tls_cert=str(pki.server_cert), grpc_tls_key=str(pki.server_key), grpc_tls_client_ca=str(pki.ca)
    )
    server = ServingThread(replace(app, settings=settings))
    yield server
    server.stop(1)


def list_plans(port: int, credentials: grpc.ChannelCredentials) -> int:
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = vip_service_pb2_grpc.VipServiceStub(channel)
        return len(stub.ListPlans(vip_service_pb2.ListPlansRequest(), metadata=BFF, timeout=5).plans)


def test_a_client_with_a_certificate_is_served(mtls_server: ServingThread, pki: Pki) -> None:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.client_key.read_bytes(),
        certificate_chain=pki.client_cert.read_bytes(),
    )
    assert list_plans(mtls_server.port, credentials) == 3


def test_a_client_without_a_certificate_is_refused(mtls_server: ServingThread, pki: Pki) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    with pytest.raises(grpc.RpcError) as refused:
        list_plans(mtls_server.port, credentials)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_plaintext_is_refused(mtls_server: ServingThread) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{mtls_server.port}") as channel:
        stub = vip_service_pb2_grpc.VipServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListPlans(vip_service_pb2.ListPlansRequest(), metadata=BFF, timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
