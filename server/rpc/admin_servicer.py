"""AdminService: proto in, one admin query or operations use case, proto out (issue 13).

Admin only: `server.rpc.auth` refuses every AdminService method to a `bff` token. A plain class of
translate-and-delegate methods, so the grpc.aio port is `async def` + `await to_thread(...)`.
"""

from __future__ import annotations

from datetime import UTC

import grpc

from orderpay.v1 import admin_service_pb2 as pb
from orderpay.v1 import admin_service_pb2_grpc, order_pb2, pay_service_pb2
from server.adapters.admin_queries import AdminQueries
from server.adapters.admin_shapes import (
    EventView,
    FulfilmentView,
    GrantView,
    NotificationView,
    OrderFilter,
)
from server.domain.clock import Clock
from server.domain.errors import FieldViolation, InvalidArgumentError, OrderNotFoundError
from server.domain.operations import Resolution
from server.domain.order import Fulfilment
from server.domain.refund import RefundStatus
from server.rpc.call_context import current_caller
from server.rpc.mapping import order_to_pb, refund_to_pb, status_from_pb, timestamp
from server.service.operations import JobKind, OperationResult, OperationsService

_RESOLUTIONS = {pb.RESOLUTION_REFUND: Resolution.REFUND, pb.RESOLUTION_ACCEPT: Resolution.ACCEPT}
_JOB_KINDS = {pb.JOB_KIND_FULFILMENT: JobKind.FULFILMENT, pb.JOB_KIND_REFUND_POLL: JobKind.REFUND_POLL}
_FULFILMENTS = {order_pb2.Fulfilment.Value(f"FULFILMENT_{f.value}"): f for f in Fulfilment}
DEFAULT_PAGE = 50


class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    def __init__(self, queries: AdminQueries, operations: OperationsService, clock: Clock) -> None:
        self._queries = queries
        self._ops = operations
        self._clock = clock

    # --- reads ------------------------------------------------------------------------------------
    def ListAllOrders(
        self, request: pb.ListAllOrdersRequest, context: grpc.ServicerContext
    ) -> pb.ListAllOrdersResponse:
        status = status_from_pb(request.status) if request.HasField("status") else None
        fulfilment = _FULFILMENTS.get(request.fulfilment) if request.HasField("fulfilment") else None
        where = OrderFilter(
            status=status.value if status else None,
            fulfilment=fulfilment.value if fulfilment else None,
            product_id=request.product_id or None,
            user_id=request.user_id or None,
            created_from=request.created_from.ToDatetime(tzinfo=UTC)
            if request.HasField("created_from")
            else None,
            created_to=request.created_to.ToDatetime(tzinfo=UTC) if request.HasField("created_to") else None,
            needs_attention=request.needs_attention,
            text=request.query or None,
            account=request.account or None,
        )
        page = self._queries.list_orders(where, request.page_size or DEFAULT_PAGE, request.page_token)
        return pb.ListAllOrdersResponse(
            orders=[order_to_pb(o) for o in page.orders], next_page_token=page.next_page_token
        )

    def GetOrderStory(
        self, request: pb.GetOrderStoryRequest, context: grpc.ServicerContext
    ) -> pb.GetOrderStoryResponse:
        story = self._queries.order_story(request.order_id)
        if story is None:
            raise OrderNotFoundError(f"order {request.order_id!r} not found")
        return pb.GetOrderStoryResponse(
            order=order_to_pb(story.order),
            events=[event_to_pb(e) for e in story.events],
            refunds=[refund_to_pb(r) for r in story.refunds],
            notifications=[notification_to_pb(n) for n in story.notifications],
            fulfilment=None if story.fulfilment is None else fulfilment_to_pb(story.fulfilment),
            grants=[grant_to_pb(g) for g in story.grants],
            provider_calls_recorded=story.provider_calls_recorded,
        )

    def ListRefunds(
        self, request: pb.ListRefundsRequest, context: grpc.ServicerContext
    ) -> pb.ListRefundsResponse:
        status = None
        if request.HasField("status") and request.status:
            status = pay_service_pb2.RefundStatus.Name(request.status).removeprefix("REFUND_STATUS_")
        refunds = self._queries.list_refunds(
            status=status,
            stuck=request.stuck,
            limit=request.page_size or DEFAULT_PAGE,
            now=self._clock(),
            account=request.account or None,
        )
        return pb.ListRefundsResponse(refunds=[refund_to_pb(r) for r in refunds])

    def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: grpc.ServicerContext
    ) -> pb.ListNotificationsResponse:
        notes = self._queries.list_notifications(
            status=request.status or None,
            outcome=request.outcome or None,
            failing=request.failing,
            limit=request.page_size or DEFAULT_PAGE,
            account=request.account or None,
        )
        return pb.ListNotificationsResponse(notifications=[notification_to_pb(n) for n in notes])

    def ListJobs(self, request: pb.ListJobsRequest, context: grpc.ServicerContext) -> pb.ListJobsResponse:
        limit = request.page_size or DEFAULT_PAGE
        kind = _JOB_KINDS.get(request.kind)
        account = request.account or None
        response = pb.ListJobsResponse()
        if kind in (None, JobKind.FULFILMENT):
            jobs = self._queries.list_fulfilment_jobs(limit=limit, account=account)
            response.fulfilments.extend(fulfilment_to_pb(j) for j in jobs)
        if kind in (None, JobKind.REFUND_POLL):
            polls = self._queries.list_refunds(
                status=RefundStatus.PROCESSING.value, limit=limit, account=account
            )
            response.refund_polls.extend(refund_to_pb(r) for r in polls)
        return response

    # --- actions ----------------------------------------------------------------------------------
    def ResolveHeldOrder(
        self, request: pb.ResolveHeldOrderRequest, context: grpc.ServicerContext
    ) -> pb.ResolveHeldOrderResponse:
        resolution = _RESOLUTIONS.get(request.resolution)
        if resolution is None:
            raise InvalidArgumentError([FieldViolation("resolution", "must be REFUND or ACCEPT")])
        result = self._ops.resolve_held(
            request.order_id, resolution, request.reason, request.expected_version, current_caller()
        )
        return pb.ResolveHeldOrderResponse(result=result_to_pb(result))

    def RetryFulfilment(
        self, request: pb.RetryFulfilmentRequest, context: grpc.ServicerContext
    ) -> pb.RetryFulfilmentResponse:
        result = self._ops.retry_fulfilment(
            request.order_id, request.reason, request.expected_version, current_caller()
        )
        return pb.RetryFulfilmentResponse(result=result_to_pb(result))

    def ReplayNotification(
        self, request: pb.ReplayNotificationRequest, context: grpc.ServicerContext
    ) -> pb.ReplayNotificationResponse:
        result = self._ops.replay_notification(request.notification_id, request.reason, current_caller())
        return pb.ReplayNotificationResponse(result=result_to_pb(result))

    def RetryJob(self, request: pb.RetryJobRequest, context: grpc.ServicerContext) -> pb.RetryJobResponse:
        result = self._ops.retry_job(_kind(request.kind), request.key, request.reason, current_caller())
        return pb.RetryJobResponse(result=result_to_pb(result))

    def RevokeJob(self, request: pb.RevokeJobRequest, context: grpc.ServicerContext) -> pb.RevokeJobResponse:
        result = self._ops.revoke_job(_kind(request.kind), request.key, request.reason, current_caller())
        return pb.RevokeJobResponse(result=result_to_pb(result))


# --- shapes ---------------------------------------------------------------------------------------
def _kind(value: pb.JobKind.ValueType) -> JobKind:
    kind = _JOB_KINDS.get(value)
    if kind is None:
        raise InvalidArgumentError([FieldViolation("kind", "must be FULFILMENT or REFUND_POLL")])
    return kind


def event_to_pb(event: EventView) -> pb.OrderEvent:
    return pb.OrderEvent(
        time=timestamp(event.at),
        field=event.field,
        from_value=event.from_value or "",
        to_value=event.to_value,
        cause=event.cause,
        actor=event.actor,
        request_id=event.request_id,
    )


def notification_to_pb(note: NotificationView) -> pb.StoredNotification:
    return pb.StoredNotification(
        notification_id=note.notification_id,
        event_type=note.event_type,
        status=note.status,
        outcome=note.outcome,
        attempts=note.attempts,
        received_at=timestamp(note.received_at),
        processed_at=timestamp(note.processed_at),
        out_trade_no=note.out_trade_no,
        out_refund_no=note.out_refund_no,
    )


def fulfilment_to_pb(job: FulfilmentView) -> pb.FulfilmentJob:
    return pb.FulfilmentJob(
        order_id=job.order_id,
        kind=order_pb2.ProductKind.Value(f"PRODUCT_KIND_{job.kind}"),
        status=job.status,
        attempts=job.attempts,
        next_attempt_at=timestamp(job.next_attempt_at),
        last_error=job.last_error,
    )


def grant_to_pb(grant: GrantView) -> pb.Grant:
    return pb.Grant(
        kind=grant.kind,
        state=grant.state,
        days=grant.days,
        article_id=grant.article_id or "",
        created_at=timestamp(grant.created_at),
        revoked_at=timestamp(grant.revoked_at),
    )


def result_to_pb(result: OperationResult) -> pb.OperationResult:
    return pb.OperationResult(
        action=result.action,
        outcome=result.outcome,
        message=result.message,
        order=None if result.order is None else order_to_pb(result.order),
        refund=None if result.refund is None else refund_to_pb(result.refund),
    )
