"""OrderService: proto in, one use case, proto out.

Database-only use cases run on `db` (inline on the loop for SQLite, a few threads for PostgreSQL);
closing may call WeChat Pay, so it runs on the `provider` pool. GetOrder(wait_ms) parks on the
waiters registry until the order's fulfilment commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orderpay.v1 import order_service_pb2 as pb
from orderpay.v1 import order_service_pb2_grpc
from server.domain.errors import FieldViolation, InvalidArgumentError
from server.domain.order import CreateOrder, OrderStatus
from server.metrics import ORDERS
from server.rpc.call_context import add_response_header, current_caller, park
from server.rpc.mapping import order_to_pb, status_from_pb
from server.service.orders import OrderService, validate_wait, wait_is_over
from server.serving.offload import Runner
from server.serving.waiters import Waiters

OUTCOMES = ("created", "replayed", "deduplicated")
OTHER_ACCOUNT = "other"  # an order stored under an account no longer configured (a replay of it)

Context = Any  # grpc.aio.ServicerContext; the servicers never touch it


class OrderServicer(order_service_pb2_grpc.OrderServiceServicer):
    def __init__(
        self,
        orders: OrderService,
        waiters: Waiters,
        db: Runner,
        provider: Runner,
        accounts: Sequence[str] = ("default",),
    ) -> None:
        self._orders = orders
        self._waiters = waiters
        self._db = db
        self._provider = provider
        # Bound once per configured account: `.labels()` costs a lock and a lookup, too much per call.
        self._outcomes = {
            (account, name): ORDERS.labels(account, name)
            for account in (*accounts, OTHER_ACCOUNT)
            for name in OUTCOMES
        }

    async def CreateOrder(self, request: pb.CreateOrderRequest, context: Context) -> pb.CreateOrderResponse:
        cmd = CreateOrder(
            request_id=request.request_id,
            user_id=request.user_id,
            product_id=request.product_id,
            quantity=request.quantity,
            description=request.description if request.HasField("description") else None,
            attach=request.attach if request.HasField("attach") else None,
            merchant=request.merchant if request.HasField("merchant") else None,
        )
        result = await self._db.run(self._orders.create_order, cmd, current_caller())
        if result.replayed:
            add_response_header("x-idempotent-replayed", "true")
        if result.deduplicated:
            add_response_header("x-deduplicated", "unpaid-order")
        outcome = "replayed" if result.replayed else "deduplicated" if result.deduplicated else "created"
        counter = self._outcomes.get((result.order.account, outcome))
        (counter or self._outcomes[OTHER_ACCOUNT, outcome]).inc()
        return pb.CreateOrderResponse(order=order_to_pb(result.order))

    async def GetOrder(self, request: pb.GetOrderRequest, context: Context) -> pb.GetOrderResponse:
        if not request.HasField("wait_ms"):
            order = await self._db.run(self._orders.get_order, request.order_id)
            return pb.GetOrderResponse(order=order_to_pb(order))
        validate_wait(request.order_id, request.wait_ms)
        park()  # a parked waiter does no work: it does not count against admission
        order = await self._waiters.until(
            request.order_id,
            lambda: self._db.run(self._orders.get_order, request.order_id),
            wait_is_over,
            request.wait_ms / 1000,
        )
        return pb.GetOrderResponse(order=order_to_pb(order))

    async def ListOrders(self, request: pb.ListOrdersRequest, context: Context) -> pb.ListOrdersResponse:
        status = _status(request.status, "status") if request.HasField("status") else None
        page = await self._db.run(
            self._orders.list_orders,
            request.user_id,
            request.page_size,
            request.page_token,
            status,
            request.account or None,
        )
        return pb.ListOrdersResponse(
            orders=[order_to_pb(o) for o in page.orders], next_page_token=page.next_page_token
        )

    async def CloseOrder(self, request: pb.CloseOrderRequest, context: Context) -> pb.CloseOrderResponse:
        order = await self._provider.run(self._orders.close_order, request.order_id, current_caller())
        return pb.CloseOrderResponse(order=order_to_pb(order))

    async def UpdateOrderStatus(
        self, request: pb.UpdateOrderStatusRequest, context: Context
    ) -> pb.UpdateOrderStatusResponse:
        target = _status(request.status, "status")
        order = await self._provider.run(  # CLOSED closes at WeChat Pay first
            self._orders.update_order_status,
            request.order_id,
            request.expected_version,
            target,
            request.reason,
            current_caller(),
        )
        return pb.UpdateOrderStatusResponse(order=order_to_pb(order))

    async def AttachArticle(
        self, request: pb.AttachArticleRequest, context: Context
    ) -> pb.AttachArticleResponse:
        order = await self._db.run(
            self._orders.attach_article,
            request.order_id,
            request.article_id,
            request.expected_version,
            current_caller(),
        )
        return pb.AttachArticleResponse(order=order_to_pb(order))


def _status(value: int, field: str) -> OrderStatus:
    status = status_from_pb(value)
    if status is None:
        raise InvalidArgumentError([FieldViolation(field, "must be a known, specified OrderStatus")])
    return status
