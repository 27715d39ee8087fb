"""OrderService: proto in, one use case, proto out."""

from __future__ import annotations

import grpc

from orderpay.v1 import order_service_pb2 as pb
from orderpay.v1 import order_service_pb2_grpc
from server.domain.errors import FieldViolation, InvalidArgumentError
from server.domain.order import CreateOrder, OrderStatus
from server.metrics import ORDERS
from server.rpc.call_context import add_response_header, current_caller
from server.rpc.mapping import order_to_pb, status_from_pb
from server.service.orders import OrderService


class OrderServicer(order_service_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: OrderService) -> None:
        self._orders = orders

    def CreateOrder(
        self, request: pb.CreateOrderRequest, context: grpc.ServicerContext
    ) -> pb.CreateOrderResponse:
        cmd = CreateOrder(
            request_id=request.request_id,
            user_id=request.user_id,
            product_id=request.product_id,
            quantity=request.quantity,
            description=request.description if request.HasField("description") else None,
            attach=request.attach if request.HasField("attach") else None,
        )
        result = self._orders.create_order(cmd, current_caller())
        if result.replayed:
            add_response_header("x-idempotent-replayed", "true")
        if result.deduplicated:
            add_response_header("x-deduplicated", "unpaid-order")
        ORDERS.labels(
            "replayed" if result.replayed else "deduplicated" if result.deduplicated else "created"
        ).inc()
        return pb.CreateOrderResponse(order=order_to_pb(result.order))

    def GetOrder(self, request: pb.GetOrderRequest, context: grpc.ServicerContext) -> pb.GetOrderResponse:
        if request.HasField("wait_ms"):
            order = self._orders.wait_for_fulfilment(request.order_id, request.wait_ms)
        else:
            order = self._orders.get_order(request.order_id)
        return pb.GetOrderResponse(order=order_to_pb(order))

    def ListOrders(
        self, request: pb.ListOrdersRequest, context: grpc.ServicerContext
    ) -> pb.ListOrdersResponse:
        status = _status(request.status, "status") if request.HasField("status") else None
        page = self._orders.list_orders(request.user_id, request.page_size, request.page_token, status)
        return pb.ListOrdersResponse(
            orders=[order_to_pb(o) for o in page.orders], next_page_token=page.next_page_token
        )

    def CloseOrder(
        self, request: pb.CloseOrderRequest, context: grpc.ServicerContext
    ) -> pb.CloseOrderResponse:
        order = self._orders.close_order(request.order_id, current_caller())
        return pb.CloseOrderResponse(order=order_to_pb(order))

    def UpdateOrderStatus(
        self, request: pb.UpdateOrderStatusRequest, context: grpc.ServicerContext
    ) -> pb.UpdateOrderStatusResponse:
        target = _status(request.status, "status")
        order = self._orders.update_order_status(
            request.order_id, request.expected_version, target, request.reason, current_caller()
        )
        return pb.UpdateOrderStatusResponse(order=order_to_pb(order))

    def AttachArticle(
        self, request: pb.AttachArticleRequest, context: grpc.ServicerContext
    ) -> pb.AttachArticleResponse:
        order = self._orders.attach_article(
            request.order_id, request.article_id, request.expected_version, current_caller()
        )
        return pb.AttachArticleResponse(order=order_to_pb(order))


def _status(value: int, field: str) -> OrderStatus:
    status = status_from_pb(value)
    if status is None:
        raise InvalidArgumentError([FieldViolation(field, "must be a known, specified OrderStatus")])
    return status
