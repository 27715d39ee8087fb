"""PayService: answers UNIMPLEMENTED until the payment path is wired (issue 4)."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from clients.gen.orderpay.v1 import pay_service_pb2_grpc


def _unimplemented(context: grpc.ServicerContext) -> NoReturn:
    context.abort(grpc.StatusCode.UNIMPLEMENTED, "PayService is not available in this build")
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
