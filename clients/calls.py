"""What the sync and async clients share: request metadata, the retry policy and response headers.

Retry rules (issue 5): `UNAVAILABLE` is retried for every call, because every RPC of the API is
idempotent or carries its own idempotency key (`CreateOrder` reuses one `request_id` across attempts,
`RefundOrder` its `out_refund_no`); `ABORTED` only where the caller said the call has no
`expected_version`, since a lost compare-and-set is the caller's decision, not ours. Everything else
(`RESOURCE_EXHAUSTED` included: retrying into load shedding makes it worse) is raised at once.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias

import grpc

from clients.errors import REQUEST_ID_KEY, OrderPayError
from orderpay.v1 import order_pb2, pay_service_pb2

REPLAYED_KEY = "x-idempotent-replayed"
DEDUPLICATED_KEY = "x-deduplicated"

Metadata: TypeAlias = tuple[tuple[str, str], ...]
# Enum arguments accept the protobuf value or its short name ("PAID", "JSAPI").
OrderStatusArg: TypeAlias = order_pb2.OrderStatus.ValueType | str
PayChannelArg: TypeAlias = pay_service_pb2.PayChannel.ValueType | str
# Where an ABNORMAL refund's money goes instead: the payer's debit card or the merchant's bank account.
AbnormalRouteArg: TypeAlias = Literal["USER_BANK_CARD", "MERCHANT_BANK_CARD"]


def new_id() -> str:
    """A fresh random id for `x-request-id` and `CreateOrder.request_id`."""
    return uuid.uuid4().hex


def request_metadata(token: str, trace_id: str) -> Metadata:
    return (("authorization", f"Bearer {token}"), (REQUEST_ID_KEY, trace_id))


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_base: float = 0.05
    backoff_cap: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay_before_retry(
        self, error: OrderPayError, attempt: int, *, retry_aborted: bool, remaining: float
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None when `error` must be raised."""
        if attempt >= self.max_attempts or not self._retryable(error, retry_aborted=retry_aborted):
            return None
        delay = self._backoff(attempt)
        # No point sleeping past the deadline only to fail with DEADLINE_EXCEEDED instead of the cause.
        return delay if delay < remaining else None

    def _retryable(self, error: OrderPayError, *, retry_aborted: bool) -> bool:
        if error.code is grpc.StatusCode.UNAVAILABLE:
            return True
        return retry_aborted and error.code is grpc.StatusCode.ABORTED

    def _backoff(self, attempt: int) -> float:
        # "Equal jitter": half the exponential step is fixed, half random, so concurrent clients that
        # failed together spread out without any of them retrying immediately.
        step = min(self.backoff_cap, self.backoff_base * 2.0 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)


@dataclass(frozen=True)
class Deadline:
    """One deadline for a logical call; each retry gets what is left of it."""

    expires_at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())


@dataclass(frozen=True)
class ResponseHeaders:
    """The response metadata the API defines (x-request-id, x-idempotent-replayed, x-deduplicated)."""

    trace_id: str
    replayed: bool = False
    deduplicated: bool = False

    @classmethod
    def parse(cls, metadata: Iterable[tuple[str, str | bytes]] | None, sent_trace_id: str) -> ResponseHeaders:
        values = {key: value for key, value in metadata or () if isinstance(value, str)}
        return cls(
            trace_id=values.get(REQUEST_ID_KEY) or sent_trace_id,
            replayed=values.get(REPLAYED_KEY, "").lower() == "true",
            deduplicated=values.get(DEDUPLICATED_KEY, "") != "",
        )


@dataclass(frozen=True)
class CreateOrderResult:
    """`CreateOrder`'s order and what the server said about it.

    `replayed`: the same (user, request_id) was seen before and this is the stored order.
    `deduplicated`: an unpaid order for the same product already existed and is returned instead.
    `trace_id`: the call's `x-request-id`. The idempotency key is `order.request_id`.
    """

    order: order_pb2.Order
    replayed: bool
    deduplicated: bool
    trace_id: str


def pay_channel(channel: PayChannelArg) -> pay_service_pb2.PayChannel.ValueType:
    """Accept the enum or its short name (`"JSAPI"`, `"native"`)."""
    if isinstance(channel, str):
        return pay_service_pb2.PayChannel.Value(f"PAY_CHANNEL_{channel.upper()}")
    return channel


def order_status(status: OrderStatusArg) -> order_pb2.OrderStatus.ValueType:
    """Accept the enum or its short name (`"PAID"`, `"unpaid"`)."""
    if isinstance(status, str):
        return order_pb2.OrderStatus.Value(f"ORDER_STATUS_{status.upper()}")
    return status
