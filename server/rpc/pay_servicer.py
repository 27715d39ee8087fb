"""PayService: proto in, one use case, proto out. UNIMPLEMENTED when no credentials are configured.

Every use case here may call WeChat Pay (sync HTTP, seconds at worst), so each runs on the offload
pool, never on the event loop.
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from orderpay.v1 import pay_service_pb2 as pb
from orderpay.v1 import pay_service_pb2_grpc
from server.domain.errors import FieldViolation, InvalidArgumentError
from server.domain.provider import AbnormalRefundRoute, ResolveAbnormal
from server.rpc.call_context import current_caller
from server.rpc.mapping import order_to_pb, payment_to_pb, refund_to_pb
from server.service.payments import PaymentService
from server.service.refunds import RefundService
from server.serving.offload import Runner

Context = Any  # grpc.aio.ServicerContext


class PayServicer(pay_service_pb2_grpc.PayServiceServicer):
    def __init__(
        self, payments: PaymentService, refunds: RefundService, db: Runner, provider: Runner
    ) -> None:
        self._payments = payments
        self._refunds = refunds
        self._db = db
        self._provider = provider

    async def CreatePayment(
        self, request: pb.CreatePaymentRequest, context: Context
    ) -> pb.CreatePaymentResponse:
        channel = pb.PayChannel.Name(request.channel).removeprefix("PAY_CHANNEL_")
        view = await self._provider.run(
            self._payments.create_payment,
            request.order_id,
            channel,
            request.payer_openid if request.HasField("payer_openid") else None,
            request.client_ip if request.HasField("client_ip") else None,
            current_caller(),
        )
        return pb.CreatePaymentResponse(payment=payment_to_pb(view))

    async def SyncPayment(self, request: pb.SyncPaymentRequest, context: Context) -> pb.SyncPaymentResponse:
        order = await self._provider.run(self._payments.sync_payment, request.order_id, current_caller())
        return pb.SyncPaymentResponse(order=order_to_pb(order))

    async def RefundOrder(self, request: pb.RefundOrderRequest, context: Context) -> pb.RefundOrderResponse:
        refund = await self._provider.run(
            self._refunds.refund_order,
            request.order_id,
            request.out_refund_no,
            request.amount,
            request.reason,
            current_caller(),
        )
        return pb.RefundOrderResponse(refund=refund_to_pb(refund))

    async def GetRefund(self, request: pb.GetRefundRequest, context: Context) -> pb.GetRefundResponse:
        if request.sync:  # asks WeChat Pay
            refund = await self._provider.run(
                self._refunds.get_refund, request.out_refund_no, True, current_caller()
            )
        else:
            refund = await self._db.run(
                self._refunds.get_refund, request.out_refund_no, False, current_caller()
            )
        return pb.GetRefundResponse(refund=refund_to_pb(refund))

    async def ResolveAbnormalRefund(
        self, request: pb.ResolveAbnormalRefundRequest, context: Context
    ) -> pb.ResolveAbnormalRefundResponse:
        route = _ROUTES.get(request.route)
        if route is None:
            violation = FieldViolation("route", "must be USER_BANK_CARD or MERCHANT_BANK_CARD")
            raise InvalidArgumentError([violation])
        command = ResolveAbnormal(
            request.out_refund_no,
            route,
            request.reason,
            request.bank_type,
            request.bank_account,
            request.real_name,
        )
        refund = await self._provider.run(self._refunds.resolve_abnormal, command, current_caller())
        return pb.ResolveAbnormalRefundResponse(refund=refund_to_pb(refund))


_ROUTES = {
    pb.ABNORMAL_REFUND_ROUTE_USER_BANK_CARD: AbnormalRefundRoute.USER_BANK_CARD,
    pb.ABNORMAL_REFUND_ROUTE_MERCHANT_BANK_CARD: AbnormalRefundRoute.MERCHANT_BANK_CARD,
}


async def _unimplemented(context: grpc.aio.ServicerContext[Any, Any]) -> NoReturn:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "payments are not configured (no credentials bundle)")


class UnimplementedPayServicer(pay_service_pb2_grpc.PayServiceServicer):
    async def CreatePayment(self, request: Any, context: Context) -> Any:
        await _unimplemented(context)

    async def SyncPayment(self, request: Any, context: Context) -> Any:
        await _unimplemented(context)

    async def RefundOrder(self, request: Any, context: Context) -> Any:
        await _unimplemented(context)

    async def GetRefund(self, request: Any, context: Context) -> Any:
        await _unimplemented(context)

    async def ResolveAbnormalRefund(self, request: Any, context: Context) -> Any:
        await _unimplemented(context)
