"""The gRPC server factory on grpc.aio: servicers, interceptor, health, reflection; bind; graceful stop.

It runs on the process's one event loop (see server/lifecycle.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
from grpc_health.v1 import _async as aio_health
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orderpay.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    order_service_pb2,
    order_service_pb2_grpc,
    pay_service_pb2,
    pay_service_pb2_grpc,
    recon_service_pb2,
    recon_service_pb2_grpc,
    vip_service_pb2,
    vip_service_pb2_grpc,
)
from server.app import App
from server.config import Settings
from server.rpc.admin_servicer import AdminServicer
from server.rpc.auth import TokenAuthenticator
from server.rpc.event_servicer import EventServicer
from server.rpc.interceptors import ServerInterceptor
from server.rpc.order_servicer import OrderServicer
from server.rpc.pay_servicer import PayServicer, UnimplementedPayServicer
from server.rpc.recon_servicer import ReconServicer
from server.rpc.vip_servicer import VipServicer
from server.serving.admission import Admission
from server.serving.feed_signal import FeedSignal
from server.serving.offload import Runner
from server.serving.waiters import Waiters

SERVICE_NAMES = (
    order_service_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
    pay_service_pb2.DESCRIPTOR.services_by_name["PayService"].full_name,
    vip_service_pb2.DESCRIPTOR.services_by_name["VipService"].full_name,
    recon_service_pb2.DESCRIPTOR.services_by_name["ReconService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    events_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
)


@dataclass(frozen=True)
class Servicers:
    order: order_service_pb2_grpc.OrderServiceServicer
    pay: pay_service_pb2_grpc.PayServiceServicer
    vip: vip_service_pb2_grpc.VipServiceServicer
    admin: admin_service_pb2_grpc.AdminServiceServicer | None = None
    recon: recon_service_pb2_grpc.ReconServiceServicer | None = None  # None without payments
    events: events_pb2_grpc.EventServiceServicer | None = None


class Offloaded:
    """A plain translate-and-delegate servicer (the operator's APIs: rare calls, some reaching WeChat
    Pay) served on grpc.aio: each method runs on `runner`, with the call's contextvars."""

    def __init__(self, servicer: object, runner: Runner) -> None:
        self._servicer, self._runner = servicer, runner

    def __getattr__(self, name: str) -> Callable[[Any, Any], Awaitable[Any]]:
        method = getattr(self._servicer, name)

        async def call(request: Any, context: Any) -> Any:
            return await self._runner.run(method, request, context)

        return call


def servicers_for(
    app: App, waiters: Waiters, db: Runner, provider: Runner, feed: FeedSignal | None = None
) -> Servicers:
    """`db` runs database-only use cases, `provider` the ones that may call WeChat Pay."""
    part = app.payments
    external = part.external if part is not None else None
    events = EventServicer(app.feed, external, feed, db, app.webhooks) if feed is not None else None
    admin = cast(
        admin_service_pb2_grpc.AdminServiceServicer,
        Offloaded(AdminServicer(app.admin, app.operations, app.clock), provider),
    )
    accounts = part.reconciliation.accounts if part is not None else ("default",)
    order = OrderServicer(app.orders, waiters, db, provider, accounts)
    vip = VipServicer(app.catalogue, db)
    if part is None:
        return Servicers(order=order, pay=UnimplementedPayServicer(), vip=vip, admin=admin, events=events)
    recon = cast(
        recon_service_pb2_grpc.ReconServiceServicer, Offloaded(ReconServicer(part.reconciliation), provider)
    )
    pay = PayServicer(part.payments, part.refunds, db, provider)
    return Servicers(order=order, pay=pay, vip=vip, admin=admin, recon=recon, events=events)


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    port: int
    health: aio_health.HealthServicer

    async def stop(self, grace: float) -> None:
        """NOT_SERVING first, so balancers drain us; then finish in-flight calls within `grace`."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)

    async def not_serving(self) -> None:
        await self.health.enter_graceful_shutdown()

    async def set_serving(self, serving: bool) -> None:
        """What the database allows (server.serving.health); ignored once shutting down."""
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in (*SERVICE_NAMES, ""):
            await self.health.set(name, status)


async def start_grpc_server(
    settings: Settings, servicers: Servicers, admission: Admission, *, reuse_port: bool = False
) -> GrpcServer:
    server = grpc.aio.server(
        interceptors=[ServerInterceptor(TokenAuthenticator(settings.tokens), admission)],
        # A memory cap only: parked long-polls are calls too. Work is bounded by `admission`.
        maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
        options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
    )
    order_service_pb2_grpc.add_OrderServiceServicer_to_server(servicers.order, server)
    pay_service_pb2_grpc.add_PayServiceServicer_to_server(servicers.pay, server)
    vip_service_pb2_grpc.add_VipServiceServicer_to_server(servicers.vip, server)
    if servicers.admin is not None:
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(servicers.admin, server)
    if servicers.recon is not None:
        recon_service_pb2_grpc.add_ReconServiceServicer_to_server(servicers.recon, server)
    if servicers.events is not None:
        events_pb2_grpc.add_EventServiceServicer_to_server(servicers.events, server)
    health_servicer = aio_health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = _bind(server, settings)
    await server.start()
    for name in (*SERVICE_NAMES, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return GrpcServer(server, port, health_servicer)


def _bind(server: grpc.aio.Server, settings: Settings) -> int:
    if not settings.grpc_tls_cert:
        return server.add_insecure_port(settings.grpc_listen)
    key = Path(settings.grpc_tls_key).read_bytes()
    cert = Path(settings.grpc_tls_cert).read_bytes()
    client_ca = Path(settings.grpc_tls_client_ca).read_bytes() if settings.grpc_tls_client_ca else None
    credentials = grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
    return server.add_secure_port(settings.grpc_listen, credentials)
