"""`OrderPayClient`: the typed, blocking client a BFF uses to call orderpay.

Every call carries the bearer token, an `x-request-id` (the caller's `trace_id` or a fresh one, kept
across retries so the server's log lines of all attempts share it) and a deadline; retry-safe failures
are retried with backoff (rules in `clients.calls`); everything else is raised as the typed exception
of `clients.errors` chosen by the server's `ErrorInfo.reason`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self, TypeVar

import grpc
from google.protobuf.message import Message

from clients.calls import (
    CreateOrderResult,
    Deadline,
    OrderStatusArg,
    PayChannelArg,
    ResponseHeaders,
    RetryPolicy,
    new_id,
    order_status,
    pay_channel,
    request_metadata,
    wait_timeout,
)
from clients.channel import TlsConfig, make_channel
from clients.errors import from_rpc_error
from orderpay.v1 import (
    order_pb2,
    order_service_pb2,
    order_service_pb2_grpc,
    pay_service_pb2,
    pay_service_pb2_grpc,
    vip_service_pb2,
    vip_service_pb2_grpc,
)

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)


class OrderPayClient:
    """Blocking client for OrderService, PayService and VipService. Thread-safe; share one per process."""

    def __init__(
        self,
        target: str,
        token: str,
        *,
        default_timeout: float = 5.0,
        max_attempts: int = 3,
        backoff_base: float = 0.05,
        channel: grpc.Channel | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        self._owns_channel = channel is None
        self._channel = channel or make_channel(target, tls=tls)
        self._token = token
        self._default_timeout = default_timeout
        self._retry = RetryPolicy(max_attempts=max_attempts, backoff_base=backoff_base)
        self._orders = order_service_pb2_grpc.OrderServiceStub(self._channel)
        self._pay = pay_service_pb2_grpc.PayServiceStub(self._channel)
        self._vip = vip_service_pb2_grpc.VipServiceStub(self._channel)

    def close(self) -> None:
        """Close the channel if this client made it; a channel passed in belongs to the caller."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # OrderService

    def create_order(
        self,
        user_id: str,
        product_id: str,
        quantity: int = 1,
        *,
        request_id: str | None = None,
        description: str | None = None,
        attach: str | None = None,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> CreateOrderResult:
        """Create an order, idempotent on (user_id, request_id); `request_id` defaults to a fresh id
        made once here, so the client's own retries can never create a second order."""
        request = order_service_pb2.CreateOrderRequest(
            request_id=request_id or new_id(),
            user_id=user_id,
            product_id=product_id,
            quantity=quantity,
            description=description,
            attach=attach,
        )
        response, headers = self._invoke(
            self._orders.CreateOrder, request, retry_aborted=True, trace_id=trace_id, timeout=timeout
        )
        return CreateOrderResult(
            order=response.order,
            replayed=headers.replayed,
            deduplicated=headers.deduplicated,
            trace_id=headers.trace_id,
        )

    def get_order(
        self,
        order_id: str,
        wait_ms: int | None = None,
        *,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> order_pb2.Order:
        """Read an order; with `wait_ms`, the server holds the call until fulfilment leaves PENDING."""
        request = order_service_pb2.GetOrderRequest(order_id=order_id, wait_ms=wait_ms)
        timeout = timeout or wait_timeout(self._default_timeout, wait_ms)
        response, _ = self._invoke(
            self._orders.GetOrder, request, retry_aborted=True, trace_id=trace_id, timeout=timeout
        )
        return response.order

    def list_orders(
        self,
        user_id: str,
        page_size: int = 20,
        page_token: str = "",
        status: OrderStatusArg | None = None,
        *,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> order_service_pb2.ListOrdersResponse:
        """One page of a user's orders, newest first; `next_page_token` is empty on the last page."""
        request = order_service_pb2.ListOrdersRequest(
            user_id=user_id,
            page_size=page_size,
            page_token=page_token,
            status=None if status is None else order_status(status),
        )
        response, _ = self._invoke(
            self._orders.ListOrders, request, retry_aborted=True, trace_id=trace_id, timeout=timeout
        )
        return response

    def iter_orders(
        self, user_id: str, page_size: int = 20, status: OrderStatusArg | None = None
    ) -> Iterator[order_pb2.Order]:
        """Every order of a user, newest first, fetching pages as the caller consumes them."""
        page_token = ""
        while True:
            page = self.list_orders(user_id, page_size, page_token, status)
            yield from page.orders
            if not page.next_page_token:
                return
            page_token = page.next_page_token

    def close_order(
        self, order_id: str, *, trace_id: str | None = None, timeout: float | None = None
    ) -> order_pb2.Order:
        request = order_service_pb2.CloseOrderRequest(order_id=order_id)
        response, _ = self._invoke(
            self._orders.CloseOrder, request, retry_aborted=True, trace_id=trace_id, timeout=timeout
        )
        return response.order

    def update_order_status(
        self,
        order_id: str,
        expected_version: int,
        status: OrderStatusArg,
        reason: str,
        *,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> order_pb2.Order:
        """Admin: move an order through the state machine. A `VersionConflict` is never retried here."""
        request = order_service_pb2.UpdateOrderStatusRequest(
            order_id=order_id, expected_version=expected_version, status=order_status(status), reason=reason
        )
        response, _ = self._invoke(
            self._orders.UpdateOrderStatus, request, retry_aborted=False, trace_id=trace_id, timeout=timeout
        )
        return response.order

    def attach_article(
        self,
        order_id: str,
        article_id: str,
        expected_version: int,
        *,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> order_pb2.Order:
        """Set the article an order is for. A `VersionConflict` is never retried here."""
        request = order_service_pb2.AttachArticleRequest(
            order_id=order_id, article_id=article_id, expected_version=expected_version
        )
        response, _ = self._invoke(
            self._orders.AttachArticle, request, retry_aborted=False, trace_id=trace_id, timeout=timeout
        )
        return response.order

    # PayService

    def create_payment(
        self,
        order_id: str,
        channel: PayChannelArg,
        payer_openid: str | None = None,
        client_ip: str | None = None,
        *,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> pay_service_pb2.Payment:
        """The prepay and the client's pay parameters; the server reuses a still-valid prepay."""
        request = pay_service_pb2.CreatePaymentRequest(
            order_id=order_id, channel=pay_channel(channel), payer_openid=payer_openid, client_ip=client_ip
        )
        response, _ = self._invoke(
            self._pay.CreatePayment, request, retry_aborted=True, trace_id=trace_id, timeout=timeout
        )
        return response.payment

    def sync_payment(
        self, order_id: str, *, trace_id: str | None = None, timeout: float | None = None
    ) -> order_pb2.Order:
        """Ask WeChat Pay for the order's state and repair the local copy."""
        request = pay_service_pb2.SyncPaymentRequest(order_id=order_id)
        response, _ = self._invoke(
            self._pay.SyncPayment, request, retry_aborted=True, trace_id=trace_id, timeout=timeout
        )
        return response.order

    def refund_order(
        self,
        order_id: str,
        out_refund_no: str,
        amount: int,
        reason: str,
        *,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> pay_service_pb2.Refund:
        """Admin: refund `amount` fen; idempotent on `out_refund_no`, which makes retrying safe."""
        request = pay_service_pb2.RefundOrderRequest(
            order_id=order_id, out_refund_no=out_refund_no, amount=amount, reason=reason
        )
        response, _ = self._invoke(
            self._pay.RefundOrder, request, retry_aborted=True, trace_id=trace_id, timeout=timeout
        )
        return response.refund

    def get_refund(
        self,
        out_refund_no: str,
        sync: bool = False,
        *,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> pay_service_pb2.Refund:
        request = pay_service_pb2.GetRefundRequest(out_refund_no=out_refund_no, sync=sync)
        response, _ = self._invoke(
            self._pay.GetRefund, request, retry_aborted=True, trace_id=trace_id, timeout=timeout
        )
        return response.refund

    # VipService

    def list_plans(
        self, *, trace_id: str | None = None, timeout: float | None = None
    ) -> list[vip_service_pb2.Plan]:
        request = vip_service_pb2.ListPlansRequest()
        response, _ = self._invoke(
            self._vip.ListPlans, request, retry_aborted=True, trace_id=trace_id, timeout=timeout
        )
        return list(response.plans)

    def get_membership(
        self, user_id: str, *, trace_id: str | None = None, timeout: float | None = None
    ) -> vip_service_pb2.Membership:
        request = vip_service_pb2.GetMembershipRequest(user_id=user_id)
        response, _ = self._invoke(
            self._vip.GetMembership, request, retry_aborted=True, trace_id=trace_id, timeout=timeout
        )
        return response.membership

    # The one place calls are made.

    def _invoke(
        self,
        rpc: grpc.UnaryUnaryMultiCallable[RequestT, ResponseT],
        request: RequestT,
        *,
        retry_aborted: bool,
        trace_id: str | None,
        timeout: float | None,
    ) -> tuple[ResponseT, ResponseHeaders]:
        trace_id = trace_id or new_id()
        metadata = request_metadata(self._token, trace_id)
        deadline = Deadline.after(timeout or self._default_timeout)
        attempt = 1
        while True:
            try:
                response, call = rpc.with_call(request, timeout=deadline.remaining(), metadata=metadata)
            except grpc.RpcError as err:
                error = from_rpc_error(err, trace_id=trace_id)
                delay = self._retry.delay_before_retry(
                    error, attempt, retry_aborted=retry_aborted, remaining=deadline.remaining()
                )
                if delay is None:
                    raise error from err
                time.sleep(delay)
                attempt += 1
            else:
                return response, ResponseHeaders.parse(call.initial_metadata(), trace_id)
