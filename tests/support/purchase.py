"""Buying through a running stack, and reading what the purchase gave (the e2e tests' shared steps)."""

from __future__ import annotations

from datetime import timedelta

from clients.client import OrderPayClient
from orderpay.v1 import order_pb2
from tests.support.stack import Stack

PLAN_DAYS = 30  # vip-month in server/data/catalogue.json


def buy(bff: OrderPayClient, stack: Stack, user: str, **faults: object) -> order_pb2.Order:
    order = bff.create_order(user, "vip-month").order
    if faults:
        stack.faults(order.out_trade_no, **faults)
    bff.create_payment(order.order_id, "NATIVE")
    stack.pay(order.out_trade_no)
    return bff.get_order(order.order_id, wait_ms=15_000)


def membership_days(bff: OrderPayClient, user: str, since: order_pb2.Order) -> float:
    expires = bff.get_membership(user).expires_at.ToDatetime()
    paid_at = since.paid_at.ToDatetime()
    return (expires - paid_at) / timedelta(days=1)
