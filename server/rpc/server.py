"""The gRPC server factory: servicers, interceptor, health, reflection; bind; graceful stop."""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orderpay.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    order_service_pb2,
    order_service_pb2_grpc,
    pay_service_pb2,
    pay_service_pb2_grpc,
    recon_service_pb2,
    recon_service_pb2_grpc,
    vip_service_pb2,
    vip_service_pb2_grpc,
)
from server.config import Settings
from server.rpc.auth import TokenAuthenticator
from server.rpc.interceptors import ServerInterceptor

SERVICE_NAMES = (
    order_service_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
    pay_service_pb2.DESCRIPTOR.services_by_name["PayService"].full_name,
    vip_service_pb2.DESCRIPTOR.services_by_name["VipService"].full_name,
    recon_service_pb2.DESCRIPTOR.services_by_name["ReconService"].full_name,  # issue 12
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,  # issue 13
)


@dataclass(frozen=True)
class Servicers:
    order: order_service_pb2_grpc.OrderServiceServicer
    pay: pay_service_pb2_grpc.PayServiceServicer
    vip: vip_service_pb2_grpc.VipServiceServicer
    recon: recon_service_pb2_grpc.ReconServiceServicer | None = None  # issue 12: None without credentials
    admin: admin_service_pb2_grpc.AdminServiceServicer | None = None  # issue 13: operations


@dataclass
class GrpcServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer

    def stop(self, grace: float) -> None:
        """NOT_SERVING first, so balancers drain us; then finish in-flight calls within `grace`."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def create_grpc_server(settings: Settings, servicers: Servicers, *, reuse_port: bool = False) -> GrpcServer:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="rpc"),
        interceptors=[ServerInterceptor(TokenAuthenticator(settings.tokens))],
        maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
    )
    order_service_pb2_grpc.add_OrderServiceServicer_to_server(servicers.order, server)
    pay_service_pb2_grpc.add_PayServiceServicer_to_server(servicers.pay, server)
    vip_service_pb2_grpc.add_VipServiceServicer_to_server(servicers.vip, server)
    if servicers.recon is not None:  # issue 12
        recon_service_pb2_grpc.add_ReconServiceServicer_to_server(servicers.recon, server)
    if servicers.admin is not None:
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(servicers.admin, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = _bind(server, settings)
    server.start()
    for name in (*SERVICE_NAMES, ""):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return GrpcServer(server, port, health_servicer)


def _bind(server: grpc.Server, settings: Settings) -> int:
    if not settings.grpc_tls_cert:
        return server.add_insecure_port(settings.grpc_listen)
    key = Path(settings.grpc_tls_key).read_bytes()
    cert = Path(settings.grpc_tls_cert).read_bytes()
    client_ca = Path(settings.grpc_tls_client_ca).read_bytes() if settings.grpc_tls_client_ca else None
    credentials = grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
    return server.add_secure_port(settings.grpc_listen, credentials)
