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
from typing import Any, Self, TypeVar

import grpc

from clients import requests
from clients.calls import (
    AbnormalRouteArg,
    CreateOrderResult,
    Deadline,
    OrderStatusArg,
    PayChannelArg,
    ResponseHeaders,
    RetryPolicy,
    new_id,
    request_metadata,
)
from clients.channel import TlsConfig, make_channel
from clients.errors import from_rpc_error
from clients.requests import Call
from orderpay.v1 import (
    order_pb2,
    order_service_pb2,
    order_service_pb2_grpc,
    pay_service_pb2,
    pay_service_pb2_grpc,
    vip_service_pb2,
    vip_service_pb2_grpc,
)

ResultT = TypeVar("ResultT")


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
        # By service name, as `clients.requests.Call.service` names them.
        self._stubs: dict[str, object] = {
            "OrderService": order_service_pb2_grpc.OrderServiceStub(self._channel),
            "PayService": pay_service_pb2_grpc.PayServiceStub(self._channel),
            "VipService": vip_service_pb2_grpc.VipServiceStub(self._channel),
        }

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
        merchant: str | None = None,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> CreateOrderResult:
        """Create an order, idempotent on (user_id, request_id); `request_id` defaults to a fresh id
        made once here, so the client's own retries can never create a second order."""
        call = requests.create_order(
            user_id,
            product_id,
            quantity,
            request_id=request_id,
            description=description,
            attach=attach,
            merchant=merchant,
        )
        return self._invoke(call, trace_id, timeout)

    def get_order(
        self,
        order_id: str,
        wait_ms: int | None = None,
        *,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> order_pb2.Order:
        """Read an order; with `wait_ms`, the server holds the call until fulfilment leaves PENDING."""
        return self._invoke(requests.get_order(order_id, wait_ms), trace_id, timeout)

    def list_orders(
        self,
        user_id: str,
        page_size: int = 20,
        page_token: str = "",
        status: OrderStatusArg | None = None,
        account: str = "",
        *,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> order_service_pb2.ListOrdersResponse:
        """One page of a user's orders, newest first; `next_page_token` is empty on the last page.
        `account`: only the orders that merchant account took (issue 18)."""
        call = requests.list_orders(user_id, page_size, page_token, status, account)
        return self._invoke(call, trace_id, timeout)

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
        return self._invoke(requests.close_order(order_id), trace_id, timeout)

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
        call = requests.update_order_status(order_id, expected_version, status, reason)
        return self._invoke(call, trace_id, timeout)

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
        call = requests.attach_article(order_id, article_id, expected_version)
        return self._invoke(call, trace_id, timeout)

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
        call = requests.create_payment(order_id, channel, payer_openid, client_ip)
        return self._invoke(call, trace_id, timeout)

    def sync_payment(
        self, order_id: str, *, trace_id: str | None = None, timeout: float | None = None
    ) -> order_pb2.Order:
        """Ask WeChat Pay for the order's state and repair the local copy."""
        return self._invoke(requests.sync_payment(order_id), trace_id, timeout)

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
        call = requests.refund_order(order_id, out_refund_no, amount, reason)
        return self._invoke(call, trace_id, timeout)

    def get_refund(
        self,
        out_refund_no: str,
        sync: bool = False,
        *,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> pay_service_pb2.Refund:
        return self._invoke(requests.get_refund(out_refund_no, sync), trace_id, timeout)

    def resolve_abnormal_refund(
        self,
        out_refund_no: str,
        route: AbnormalRouteArg,
        reason: str,
        bank_type: str = "",
        bank_account: str = "",
        real_name: str = "",
        *,
        trace_id: str | None = None,
        timeout: float | None = None,
    ) -> pay_service_pb2.Refund:
        """Admin: re-route an ABNORMAL refund's money (payer's card or merchant's account)."""
        call = requests.resolve_abnormal_refund(
            out_refund_no, route, reason, bank_type, bank_account, real_name
        )
        return self._invoke(call, trace_id, timeout)

    # VipService

    def list_plans(
        self, *, trace_id: str | None = None, timeout: float | None = None
    ) -> list[vip_service_pb2.Plan]:
        return self._invoke(requests.list_plans(), trace_id, timeout)

    def get_membership(
        self, user_id: str, *, trace_id: str | None = None, timeout: float | None = None
    ) -> vip_service_pb2.Membership:
        return self._invoke(requests.get_membership(user_id), trace_id, timeout)

    # The one place calls are made.

    def _invoke(self, call: Call[Any, Any, ResultT], trace_id: str | None, timeout: float | None) -> ResultT:
        rpc: grpc.UnaryUnaryMultiCallable[Any, Any] = getattr(self._stubs[call.service], call.method)
        trace_id = trace_id or new_id()
        metadata = request_metadata(self._token, trace_id)
        deadline = Deadline.after(timeout or self._default_timeout + call.hold_s)
        attempt = 1
        while True:
            try:
                response, done = rpc.with_call(call.request, timeout=deadline.remaining(), metadata=metadata)
            except grpc.RpcError as err:
                error = from_rpc_error(err, trace_id=trace_id)
                delay = self._retry.delay_before_retry(
                    error, attempt, retry_aborted=call.retry_aborted, remaining=deadline.remaining()
                )
                if delay is None:
                    raise error from err
                time.sleep(delay)
                attempt += 1
            else:
                return call.read(response, ResponseHeaders.parse(done.initial_metadata(), trace_id))
