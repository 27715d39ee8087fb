"""proto <-> domain converters. No rules here: just shapes."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from orderpay.v1 import order_pb2, pay_service_pb2, vip_service_pb2
from server.domain.catalogue import Product
from server.domain.order import Fulfilment, Order, OrderStatus
from server.domain.refund import Refund, RefundStatus
from server.service.catalogue import MembershipView
from server.service.payments import PaymentView

_STATUS_TO_PB = {
    status: order_pb2.OrderStatus.Value(f"ORDER_STATUS_{status.value}") for status in OrderStatus
}
_PB_TO_STATUS = {v: k for k, v in _STATUS_TO_PB.items()}
_FULFILMENT_TO_PB = {f: order_pb2.Fulfilment.Value(f"FULFILMENT_{f.value}") for f in Fulfilment}


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def status_from_pb(value: int) -> OrderStatus | None:
    """None for UNSPECIFIED (and unknown numbers): callers decide whether that is allowed."""
    return _PB_TO_STATUS.get(order_pb2.OrderStatus.ValueType(value))


def order_to_pb(order: Order) -> order_pb2.Order:
    return order_pb2.Order(
        order_id=order.order_id,
        out_trade_no=order.out_trade_no,
        user_id=order.user_id,
        product_id=order.product_id,
        kind=order_pb2.ProductKind.Value(f"PRODUCT_KIND_{order.kind.value}"),
        quantity=order.quantity,
        total_fee=order.total_fee,
        description=order.description,
        attach=order.attach,
        article_id=order.article_id or "",
        status=_STATUS_TO_PB[order.status],
        fulfilment=_FULFILMENT_TO_PB[order.fulfilment],
        fulfilment_reason=order.fulfilment_reason,
        version=order.version,
        expires_at=timestamp(order.expires_at),
        transaction_id=order.transaction_id or "",
        paid_fee=order.paid_fee,
        refunded_fee=order.refunded_fee,
        created_at=timestamp(order.created_at),
        updated_at=timestamp(order.updated_at),
        paid_at=timestamp(order.paid_at),
        closed_at=timestamp(order.closed_at),
        request_id=order.request_id,
        legacy_status=order.status.legacy_code,
        account=order.account,
    )


def plan_to_pb(product: Product) -> vip_service_pb2.Plan:
    return vip_service_pb2.Plan(
        product_id=product.product_id,
        title=product.title,
        description=product.description,
        price_fen=product.price_fen,
        duration_days=product.duration_days or 0,
        stock=product.stock,
    )


def membership_to_pb(view: MembershipView) -> vip_service_pb2.Membership:
    return vip_service_pb2.Membership(
        user_id=view.user_id, expires_at=timestamp(view.expires_at), active=view.active, version=view.version
    )


_REFUND_STATUS_TO_PB = {
    s: pay_service_pb2.RefundStatus.Value(f"REFUND_STATUS_{s.value}") for s in RefundStatus
}


def payment_to_pb(view: PaymentView) -> pay_service_pb2.Payment:
    pay = view.pay
    payment = pay_service_pb2.Payment(
        order_id=view.order.order_id,
        out_trade_no=view.order.out_trade_no,
        channel=pay_service_pb2.PayChannel.Value(f"PAY_CHANNEL_{view.channel}"),
        prepay_id=pay.prepay_id,
        amount=view.order.total_fee,
        prepay_expires_at=timestamp(pay.expires_at),
    )
    if pay.code_url:
        payment.code_url = pay.code_url
    elif pay.h5_url:
        payment.h5_url = pay.h5_url
    elif view.channel == "APP":
        payment.app.CopyFrom(pay_service_pb2.AppPayParams(**pay.params))
    else:
        payment.jsapi.CopyFrom(pay_service_pb2.JsapiPayParams(**pay.params))
    return payment


def refund_to_pb(refund: Refund) -> pay_service_pb2.Refund:
    return pay_service_pb2.Refund(
        out_refund_no=refund.out_refund_no,
        refund_id=refund.refund_id or "",
        order_id=refund.order_id,
        amount=refund.amount,
        order_total=refund.order_total,
        status=_REFUND_STATUS_TO_PB[refund.status],
        reason=refund.reason,
        created_at=timestamp(refund.created_at),
        succeeded_at=timestamp(refund.succeeded_at),
        version=refund.version,
    )
