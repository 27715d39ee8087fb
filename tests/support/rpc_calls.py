"""Calling the gRPC stubs in tests: create an order, and expect a refusal with its rich status."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from orderpay.v1 import order_service_pb2 as pb
from tests.support.rich_status import Failure, failure_of
from tests.support.tokens import BFF


def create(
    stub: Any, user: str, key: str, product: str = "vip-month", quantity: int = 1, **extra: Any
) -> Any:
    return stub.CreateOrder(
        pb.CreateOrderRequest(request_id=key, user_id=user, product_id=product, quantity=quantity, **extra),
        metadata=BFF,
    )


def refused(call: Any, *args: Any, **kwargs: Any) -> Failure:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return failure_of(info.value)
