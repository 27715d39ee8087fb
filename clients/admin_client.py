"""`AdminClient`: the operator's blocking client for AdminService (issue 13), used by `orderpay ops`.

No automatic retries: every action is idempotent or version-guarded on the server, and an operator
re-runs a command on purpose. Failures raise the typed exceptions of `clients.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from clients.calls import new_id, request_metadata
from clients.channel import TlsConfig, make_channel
from clients.errors import from_rpc_error
from orderpay.v1 import admin_service_pb2 as pb
from orderpay.v1 import admin_service_pb2_grpc

ResponseT = TypeVar("ResponseT")
RESOLUTIONS = {"refund": pb.RESOLUTION_REFUND, "accept": pb.RESOLUTION_ACCEPT}
JOB_KINDS = {"fulfilment": pb.JOB_KIND_FULFILMENT, "refund_poll": pb.JOB_KIND_REFUND_POLL}


class AdminClient:
    def __init__(
        self, target: str, token: str, *, timeout: float = 10.0, tls: TlsConfig | None = None
    ) -> None:
        self._channel = make_channel(target, tls=tls)
        self._stub = admin_service_pb2_grpc.AdminServiceStub(self._channel)
        self._token = token
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, method: Callable[..., ResponseT], request: Any) -> ResponseT:
        trace_id = new_id()
        try:
            return method(request, timeout=self._timeout, metadata=request_metadata(self._token, trace_id))
        except grpc.RpcError as err:
            raise from_rpc_error(err, trace_id=trace_id) from None

    # --- reads ------------------------------------------------------------------------------------
    def list_all_orders(self, request: pb.ListAllOrdersRequest) -> pb.ListAllOrdersResponse:
        return self._call(self._stub.ListAllOrders, request)

    def order_story(self, order_id: str) -> pb.GetOrderStoryResponse:
        return self._call(self._stub.GetOrderStory, pb.GetOrderStoryRequest(order_id=order_id))

    def list_refunds(self, request: pb.ListRefundsRequest) -> pb.ListRefundsResponse:
        return self._call(self._stub.ListRefunds, request)

    def list_notifications(self, request: pb.ListNotificationsRequest) -> pb.ListNotificationsResponse:
        return self._call(self._stub.ListNotifications, request)

    def list_jobs(self, kind: str | None, page_size: int = 50, account: str = "") -> pb.ListJobsResponse:
        request = pb.ListJobsRequest(
            kind=JOB_KINDS.get(kind or "", pb.JOB_KIND_UNSPECIFIED), page_size=page_size, account=account
        )
        return self._call(self._stub.ListJobs, request)

    # --- actions ----------------------------------------------------------------------------------
    def resolve_held(
        self, order_id: str, resolution: str, reason: str, expected_version: int = 0
    ) -> pb.OperationResult:
        request = pb.ResolveHeldOrderRequest(
            order_id=order_id,
            resolution=RESOLUTIONS[resolution],
            reason=reason,
            expected_version=expected_version,
        )
        return self._call(self._stub.ResolveHeldOrder, request).result

    def retry_fulfilment(self, order_id: str, reason: str, expected_version: int = 0) -> pb.OperationResult:
        request = pb.RetryFulfilmentRequest(
            order_id=order_id, reason=reason, expected_version=expected_version
        )
        return self._call(self._stub.RetryFulfilment, request).result

    def replay_notification(self, notification_id: str, reason: str) -> pb.OperationResult:
        request = pb.ReplayNotificationRequest(notification_id=notification_id, reason=reason)
        return self._call(self._stub.ReplayNotification, request).result

    def retry_job(self, kind: str, key: str, reason: str) -> pb.OperationResult:
        request = pb.RetryJobRequest(kind=JOB_KINDS[kind], key=key, reason=reason)
        return self._call(self._stub.RetryJob, request).result

    def revoke_job(self, kind: str, key: str, reason: str) -> pb.OperationResult:
        request = pb.RevokeJobRequest(kind=JOB_KINDS[kind], key=key, reason=reason)
        return self._call(self._stub.RevokeJob, request).result
