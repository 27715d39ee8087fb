"""PayService: proto in, one use case, proto out. UNIMPLEMENTED when no credentials are configured."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from orderpay.v1 import pay_service_pb2 as pb
from orderpay.v1 import pay_service_pb2_grpc
from server.domain.errors import FieldViolation, InvalidArgumentError
from server.domain.provider import AbnormalRefundRoute
from server.rpc.call_context import current_caller
from server.rpc.mapping import order_to_pb, payment_to_pb, refund_to_pb
from server.service.payments import PaymentService
from server.service.refunds import RefundService, ResolveAbnormal


class PayServicer(pay_service_pb2_grpc.PayServiceServicer):
    def __init__(self, payments: PaymentService, refunds: RefundService) -> None:
        self._payments = payments
        self._refunds = refunds

    def CreatePayment(
        self, request: pb.CreatePaymentRequest, context: grpc.ServicerContext
    ) -> pb.CreatePaymentResponse:
        channel = pb.PayChannel.Name(request.channel).removeprefix("PAY_CHANNEL_")
        view = self._payments.create_payment(
            request.order_id,
            channel,
            request.payer_openid if request.HasField("payer_openid") else None,
            request.client_ip if request.HasField("client_ip") else None,
            current_caller(),
        )
        return pb.CreatePaymentResponse(payment=payment_to_pb(view))

    def SyncPayment(
        self, request: pb.SyncPaymentRequest, context: grpc.ServicerContext
    ) -> pb.SyncPaymentResponse:
        return pb.SyncPaymentResponse(
            order=order_to_pb(self._payments.sync_payment(request.order_id, current_caller()))
        )

    def RefundOrder(
        self, request: pb.RefundOrderRequest, context: grpc.ServicerContext
    ) -> pb.RefundOrderResponse:
        refund = self._refunds.refund_order(
            request.order_id, request.out_refund_no, request.amount, request.reason, current_caller()
        )
        return pb.RefundOrderResponse(refund=refund_to_pb(refund))

    def GetRefund(self, request: pb.GetRefundRequest, context: grpc.ServicerContext) -> pb.GetRefundResponse:
        refund = self._refunds.get_refund(request.out_refund_no, request.sync, current_caller())
        return pb.GetRefundResponse(refund=refund_to_pb(refund))

    def ResolveAbnormalRefund(
        self, request: pb.ResolveAbnormalRefundRequest, context: grpc.ServicerContext
    ) -> pb.ResolveAbnormalRefundResponse:
        route = _ROUTES.get(request.route)
        if route is None:
            raise InvalidArgumentError(
                [FieldViolation("route", "must be USER_BANK_CARD or MERCHANT_BANK_CARD")]
            )
        command = ResolveAbnormal(
            request.out_refund_no,
            route,
            request.reason,
            request.bank_type,
            request.bank_account,
            request.real_name,
        )
        refund = self._refunds.resolve_abnormal(command, current_caller())
        return pb.ResolveAbnormalRefundResponse(refund=refund_to_pb(refund))


_ROUTES = {
    pb.ABNORMAL_REFUND_ROUTE_USER_BANK_CARD: AbnormalRefundRoute.USER_BANK_CARD,
    pb.ABNORMAL_REFUND_ROUTE_MERCHANT_BANK_CARD: AbnormalRefundRoute.MERCHANT_BANK_CARD,
}


def _unimplemented(context: grpc.ServicerContext) -> NoReturn:
    context.abort(grpc.StatusCode.UNIMPLEMENTED, "payments are not configured (no credentials bundle)")
    raise AssertionError  # abort raises


class UnimplementedPayServicer(pay_service_pb2_grpc.PayServiceServicer):
    def CreatePayment(self, request: Any, context: grpc.ServicerContext) -> Any:
        _unimplemented(context)

    def SyncPayment(self, request: Any, context: grpc.ServicerContext) -> Any:
        _unimplemented(context)

    def RefundOrder(self, request: Any, context: grpc.ServicerContext) -> Any:
        _unimplemented(context)

    def GetRefund(self, request: Any, context: grpc.ServicerContext) -> Any:
        _unimplemented(context)

    def ResolveAbnormalRefund(self, request: Any, context: grpc.ServicerContext) -> Any:
        _unimplemented(context)
