"""Every RPC of the API as a `Call`: the request, whether ABORTED may be retried, how to read the result.

The sync (`clients.client`) and async (`clients.aio_client`) clients share these builders, so each of
their methods is one line around its `_invoke`; only the I/O (blocking `with_call` vs `await`) differs.
The retry rules themselves are in `clients.calls`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from clients.calls import (
    AbnormalRouteArg,
    CreateOrderResult,
    OrderStatusArg,
    PayChannelArg,
    ResponseHeaders,
    new_id,
    order_status,
    pay_channel,
)
from orderpay.v1 import order_pb2, order_service_pb2, pay_service_pb2, vip_service_pb2

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)
ResultT = TypeVar("ResultT")

ORDER_SERVICE = order_service_pb2.DESCRIPTOR.services_by_name["OrderService"]
PAY_SERVICE = pay_service_pb2.DESCRIPTOR.services_by_name["PayService"]
VIP_SERVICE = vip_service_pb2.DESCRIPTOR.services_by_name["VipService"]


@dataclass(frozen=True)
class Call(Generic[RequestT, ResponseT, ResultT]):
    """One RPC, ready to send.

    `service`/`method` name the generated stub and its attribute (checked against the descriptors at
    import). `retry_aborted`: whether a lost compare-and-set may be retried (never when the caller sent
    an `expected_version`). `hold_s`: how long the server may hold the call on purpose (a long poll),
    added to the client's default deadline when the caller gives no timeout.
    """

    service: str
    method: str
    request: RequestT
    read: Callable[[ResponseT, ResponseHeaders], ResultT]
    retry_aborted: bool = True
    hold_s: float = 0.0


def _rpc(service: ServiceDescriptor, name: str) -> tuple[str, str]:
    method = service.methods_by_name[name]  # a KeyError here is a typo, caught at import
    return service.name, method.name


# OrderService


def create_order(
    user_id: str,
    product_id: str,
    quantity: int = 1,
    *,
    request_id: str | None = None,
    description: str | None = None,
    attach: str | None = None,
    merchant: str | None = None,
) -> Call[order_service_pb2.CreateOrderRequest, order_service_pb2.CreateOrderResponse, CreateOrderResult]:
    """`request_id` defaults to a fresh id made once here, so retries can never create a second order.
    `merchant`: the account to take the order (a configured account's name); unset: the server's rule."""
    request = order_service_pb2.CreateOrderRequest(
        request_id=request_id or new_id(),
        user_id=user_id,
        product_id=product_id,
        quantity=quantity,
        description=description,
        attach=attach,
        merchant=merchant,
    )

    def read(response: order_service_pb2.CreateOrderResponse, headers: ResponseHeaders) -> CreateOrderResult:
        return CreateOrderResult(
            order=response.order,
            replayed=headers.replayed,
            deduplicated=headers.deduplicated,
            trace_id=headers.trace_id,
        )

    return Call(*_CREATE_ORDER, request, read)


def get_order(
    order_id: str, wait_ms: int | None = None
) -> Call[order_service_pb2.GetOrderRequest, order_service_pb2.GetOrderResponse, order_pb2.Order]:
    request = order_service_pb2.GetOrderRequest(order_id=order_id, wait_ms=wait_ms)
    return Call(*_GET_ORDER, request, lambda response, _: response.order, hold_s=(wait_ms or 0) / 1000)


def list_orders(
    user_id: str,
    page_size: int = 20,
    page_token: str = "",
    status: OrderStatusArg | None = None,
    account: str = "",
) -> Call[
    order_service_pb2.ListOrdersRequest,
    order_service_pb2.ListOrdersResponse,
    order_service_pb2.ListOrdersResponse,
]:
    request = order_service_pb2.ListOrdersRequest(
        user_id=user_id,
        page_size=page_size,
        page_token=page_token,
        status=None if status is None else order_status(status),
        account=account,
    )
    return Call(*_LIST_ORDERS, request, lambda response, _: response)


def close_order(
    order_id: str,
) -> Call[order_service_pb2.CloseOrderRequest, order_service_pb2.CloseOrderResponse, order_pb2.Order]:
    request = order_service_pb2.CloseOrderRequest(order_id=order_id)
    return Call(*_CLOSE_ORDER, request, lambda response, _: response.order)


def update_order_status(
    order_id: str, expected_version: int, status: OrderStatusArg, reason: str
) -> Call[
    order_service_pb2.UpdateOrderStatusRequest, order_service_pb2.UpdateOrderStatusResponse, order_pb2.Order
]:
    """Carries `expected_version`, so a `VersionConflict` is the caller's to decide: never retried."""
    request = order_service_pb2.UpdateOrderStatusRequest(
        order_id=order_id, expected_version=expected_version, status=order_status(status), reason=reason
    )
    return Call(*_UPDATE_ORDER_STATUS, request, lambda response, _: response.order, retry_aborted=False)


def attach_article(
    order_id: str, article_id: str, expected_version: int
) -> Call[order_service_pb2.AttachArticleRequest, order_service_pb2.AttachArticleResponse, order_pb2.Order]:
    """Carries `expected_version`, so a `VersionConflict` is the caller's to decide: never retried."""
    request = order_service_pb2.AttachArticleRequest(
        order_id=order_id, article_id=article_id, expected_version=expected_version
    )
    return Call(*_ATTACH_ARTICLE, request, lambda response, _: response.order, retry_aborted=False)


# PayService


def create_payment(
    order_id: str, channel: PayChannelArg, payer_openid: str | None = None, client_ip: str | None = None
) -> Call[
    pay_service_pb2.CreatePaymentRequest, pay_service_pb2.CreatePaymentResponse, pay_service_pb2.Payment
]:
    request = pay_service_pb2.CreatePaymentRequest(
        order_id=order_id, channel=pay_channel(channel), payer_openid=payer_openid, client_ip=client_ip
    )
    return Call(*_CREATE_PAYMENT, request, lambda response, _: response.payment)


def sync_payment(
    order_id: str,
) -> Call[pay_service_pb2.SyncPaymentRequest, pay_service_pb2.SyncPaymentResponse, order_pb2.Order]:
    request = pay_service_pb2.SyncPaymentRequest(order_id=order_id)
    return Call(*_SYNC_PAYMENT, request, lambda response, _: response.order)


def refund_order(
    order_id: str, out_refund_no: str, amount: int, reason: str
) -> Call[pay_service_pb2.RefundOrderRequest, pay_service_pb2.RefundOrderResponse, pay_service_pb2.Refund]:
    """Idempotent on `out_refund_no`, which makes retrying safe."""
    request = pay_service_pb2.RefundOrderRequest(
        order_id=order_id, out_refund_no=out_refund_no, amount=amount, reason=reason
    )
    return Call(*_REFUND_ORDER, request, lambda response, _: response.refund)


def get_refund(
    out_refund_no: str, sync: bool = False
) -> Call[pay_service_pb2.GetRefundRequest, pay_service_pb2.GetRefundResponse, pay_service_pb2.Refund]:
    request = pay_service_pb2.GetRefundRequest(out_refund_no=out_refund_no, sync=sync)
    return Call(*_GET_REFUND, request, lambda response, _: response.refund)


def resolve_abnormal_refund(
    out_refund_no: str,
    route: AbnormalRouteArg,
    reason: str,
    bank_type: str = "",
    bank_account: str = "",
    real_name: str = "",
) -> Call[
    pay_service_pb2.ResolveAbnormalRefundRequest,
    pay_service_pb2.ResolveAbnormalRefundResponse,
    pay_service_pb2.Refund,
]:
    """Admin: WeChat Pay's follow-up for an ABNORMAL refund; the refund is PROCESSING again."""
    request = pay_service_pb2.ResolveAbnormalRefundRequest(
        out_refund_no=out_refund_no,
        route=pay_service_pb2.AbnormalRefundRoute.Value(f"ABNORMAL_REFUND_ROUTE_{route}"),
        reason=reason,
        bank_type=bank_type,
        bank_account=bank_account,
        real_name=real_name,
    )
    return Call(*_RESOLVE_ABNORMAL_REFUND, request, lambda response, _: response.refund, retry_aborted=False)


# VipService


def list_plans() -> Call[
    vip_service_pb2.ListPlansRequest, vip_service_pb2.ListPlansResponse, list[vip_service_pb2.Plan]
]:
    return Call(*_LIST_PLANS, vip_service_pb2.ListPlansRequest(), lambda response, _: list(response.plans))


def get_membership(
    user_id: str,
) -> Call[
    vip_service_pb2.GetMembershipRequest, vip_service_pb2.GetMembershipResponse, vip_service_pb2.Membership
]:
    request = vip_service_pb2.GetMembershipRequest(user_id=user_id)
    return Call(*_GET_MEMBERSHIP, request, lambda response, _: response.membership)


_CREATE_ORDER = _rpc(ORDER_SERVICE, "CreateOrder")
_GET_ORDER = _rpc(ORDER_SERVICE, "GetOrder")
_LIST_ORDERS = _rpc(ORDER_SERVICE, "ListOrders")
_CLOSE_ORDER = _rpc(ORDER_SERVICE, "CloseOrder")
_UPDATE_ORDER_STATUS = _rpc(ORDER_SERVICE, "UpdateOrderStatus")
_ATTACH_ARTICLE = _rpc(ORDER_SERVICE, "AttachArticle")
_CREATE_PAYMENT = _rpc(PAY_SERVICE, "CreatePayment")
_SYNC_PAYMENT = _rpc(PAY_SERVICE, "SyncPayment")
_REFUND_ORDER = _rpc(PAY_SERVICE, "RefundOrder")
_GET_REFUND = _rpc(PAY_SERVICE, "GetRefund")
_RESOLVE_ABNORMAL_REFUND = _rpc(PAY_SERVICE, "ResolveAbnormalRefund")
_LIST_PLANS = _rpc(VIP_SERVICE, "ListPlans")
_GET_MEMBERSHIP = _rpc(VIP_SERVICE, "GetMembership")
