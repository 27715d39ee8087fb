"""What the service layer needs from persistence, as Protocols; adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from server.domain.catalogue import Product
from server.domain.membership import Membership
from server.domain.notification import Notification
from server.domain.order import Order, OrderStatus
from server.domain.refund import Refund


@dataclass(frozen=True)
class Cursor:
    """Keyset position for ListOrders: strictly older than (created_at, seq)."""

    created_at: datetime
    seq: int


@dataclass(frozen=True)
class AuditEvent:
    order_id: str
    field: str
    from_value: str | None
    to_value: str
    cause: str
    actor: str
    request_id: str


class OrderInsertConflict(Exception):  # noqa: N818 - a signal between adapter and service, not an error
    """The insert hit a unique index; the service reads the winner."""


class Products(Protocol):
    def get(self, product_id: str) -> Product | None: ...
    def list_active(self, kind: str | None = None) -> list[Product]: ...
    def reserve_stock(self, product_id: str, quantity: int) -> bool: ...
    def release_stock(self, product_id: str, quantity: int) -> None: ...
    def upsert(self, product: Product, now: datetime) -> bool: ...


class Orders(Protocol):
    def get(self, order_id: str) -> Order | None: ...
    def get_by_key(self, user_id: str, request_id: str) -> Order | None: ...
    def get_by_out_trade_no(self, out_trade_no: str) -> Order | None: ...
    def get_unpaid(self, user_id: str, product_id: str) -> Order | None: ...
    def insert(self, order: Order) -> None: ...
    def compare_and_set(self, order: Order, expected_version: int, **changes: Any) -> Order | None: ...
    def list_for_user(
        self, user_id: str, status: OrderStatus | None, after: Cursor | None, limit: int
    ) -> Sequence[tuple[Order, Cursor]]: ...


class Events(Protocol):
    def record(self, event: AuditEvent, now: datetime) -> None: ...


class Memberships(Protocol):
    def get(self, user_id: str) -> Membership | None: ...


class Refunds(Protocol):
    def get(self, out_refund_no: str) -> Refund | None: ...
    def insert(self, refund: Refund) -> None: ...
    def compare_and_set(self, refund: Refund, **changes: Any) -> Refund | None: ...
    def committed_amount(self, order_id: str) -> int: ...


class Outbox(Protocol):
    def add_fulfilment(self, order: Order, now: datetime) -> None: ...


class UnitOfWork(Protocol):
    products: Products
    orders: Orders
    events: Events
    memberships: Memberships
    refunds: Refunds
    outbox: Outbox


UnitOfWorkFactory = Callable[[], AbstractContextManager[UnitOfWork]]


class PaymentGateway(Protocol):
    """WeChat Pay as the service layer sees it (server.wxpay.client.WeChatPayClient fits)."""

    def prepay(self, channel: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def query_by_out_trade_no(self, out_trade_no: str) -> dict[str, Any]: ...
    def close(self, out_trade_no: str) -> None: ...
    def refund(self, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def query_refund(self, out_refund_no: str) -> dict[str, Any]: ...
    def jsapi_pay_params(self, prepay_id: str) -> dict[str, str]: ...
    def app_pay_params(self, prepay_id: str) -> dict[str, str]: ...


@dataclass(frozen=True)
class MerchantIdentity:
    mchid: str
    appid: str


# Verifies and decrypts a signed notification (headers, raw body, now as unix seconds), or raises
# a server.domain.notification.NotificationRejected: the provider adapter supplies it.
NotificationParser = Callable[[Mapping[str, str], bytes, float], Notification]
