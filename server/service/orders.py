"""Order use cases: create (idempotent), read, list, close, admin status change, attach article."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from server.domain.catalogue import Product
from server.domain.clock import Clock
from server.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidStateTransitionError,
    OutOfStockError,
    ProductNotFoundError,
    UnpaidOrderExistsError,
    VersionConflictError,
)
from server.domain.events import OrderClosed, OrderCreated
from server.domain.order import (
    CreateOrder,
    Fulfilment,
    Order,
    OrderStatus,
    check_transition,
    new_order_id,
    new_out_trade_no,
)
from server.domain.routing import AccountRouter
from server.domain.validation import MAX_PAGE_SIZE, MAX_QUANTITY, MAX_WAIT_MS, Violations
from server.service.audit import audit
from server.service.context import Caller, replace_actor
from server.service.feed import created_entry
from server.service.lookups import require_order
from server.service.paging import decode_page_token, encode_page_token
from server.service.ports import ReadFactory, ReadUnitOfWork, UnitOfWork, UnitOfWorkFactory

DEFAULT_PAGE_SIZE = 20
PRODUCT_CACHE_S = 1.0  # a catalogue change (price, deactivation) reaches CreateOrder within this
SEEN_KEYS = 20_000  # idempotency keys this process remembers having seen answered (a routing hint)


@dataclass(frozen=True)
class CreateOrderResult:
    order: Order
    replayed: bool = False  # same key, same request: the stored order
    deduplicated: bool = False  # new key, but the user's unpaid order for this product


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_page_token: str


def validate_create(cmd: CreateOrder) -> None:
    v = Violations()
    v.identifier("request_id", cmd.request_id, max_len=128)
    v.identifier("user_id", cmd.user_id)
    v.identifier("product_id", cmd.product_id)
    v.int_range("quantity", cmd.quantity, 1, MAX_QUANTITY)
    v.text("description", cmd.description, 127)
    v.text("attach", cmd.attach, 128)
    if cmd.merchant is not None:
        v.identifier("merchant", cmd.merchant)
    v.raise_if_any()


# Closes the order at WeChat Pay first, when a prepay exists (PaymentService.close_at_provider).
PrepayCloser = Callable[[Order, Caller], None]


class OrderService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        order_ttl: timedelta,
        prepay_closer: PrepayCloser | None = None,
        read: ReadFactory | None = None,
        router: AccountRouter | None = None,
    ) -> None:
        """`prepay_closer`: None only where no payment provider is configured (no prepay can exist).
        `router`: which merchant account takes a new order (None: the one `default` account)."""
        self._uow = uow
        self._read: ReadFactory = read or uow  # committed-data reads, outside the writers' queue
        self._clock = clock
        self._ttl = order_ttl
        self._prepay_closer = prepay_closer
        self._products: dict[str, tuple[float, Product]] = {}  # product_id -> (valid until, product)
        self._router = router or AccountRouter()
        self._seen: dict[tuple[str, str], None] = {}  # (user_id, request_id), oldest first

    # --- create -----------------------------------------------------------------------------
    def create_order(self, cmd: CreateOrder, caller: Caller) -> CreateOrderResult:
        """A key this process has answered before is read first, outside the writers' queue: a retry
        or a duplicate is answered from a read (SQLite: no write lock, no BEGIN IMMEDIATE). Any other
        key, or a read that finds nothing, inserts first. The hint only picks the path; the database
        decides either way, so a forgotten or stale key costs one read or one conflict, never a second
        order."""
        validate_create(cmd)
        fingerprint = cmd.fingerprint()
        key = (cmd.user_id, cmd.request_id)
        if key in self._seen:
            with self._read() as read:
                existing = read.orders.get_by_key(*key)
            if existing is not None:
                return _replay(existing, fingerprint)
        result = self._insert_first(cmd, fingerprint, caller)
        if not result.deduplicated:  # the key has a row of its own now
            self._remember(key)
        return result

    def _remember(self, key: tuple[str, str]) -> None:
        seen = self._seen
        seen[key] = None
        if len(seen) > SEEN_KEYS:
            seen.pop(next(iter(seen)), None)  # the oldest; another thread may have taken it

    def _insert_first(self, cmd: CreateOrder, fingerprint: str, caller: Caller) -> CreateOrderResult:
        """Insert first, in one transaction on one connection: the order and its audit row, or (a
        unique index already holds the key, or the user's unpaid order for this product) read the
        winner and answer from it. The database decides; nothing is read before the insert."""
        with self._uow() as uow:
            product = self._product(uow, cmd.product_id)
            if product is None or not product.active:
                raise ProductNotFoundError(f"product {cmd.product_id!r} not found")
            order = self._new_order(cmd, fingerprint, product)
            created = audit(order, "status", None, order.status, "created", caller)
            limited = product.stock is not None
            # Unlimited stock: the insert is the transaction's last write, so it carries the feed
            # entry too (one round trip on PostgreSQL). Limited: the stock row is locked after the
            # insert, so the entry is appended at commit, as the feed's lock order wants.
            entry = None if limited else created_entry(order, order.created_at)
            if not uow.orders.insert_first(order, created, order.created_at, entry):
                return _resolve_conflict(uow, cmd, fingerprint)
            if entry is None:
                uow.record(OrderCreated(order))
            else:
                uow.record_appended(OrderCreated(order))
            if limited and not uow.products.reserve_stock(product.product_id, cmd.quantity):
                raise OutOfStockError(
                    f"product {product.product_id!r} is out of stock",
                    metadata={"product_id": product.product_id},
                )
        return CreateOrderResult(order)

    def _product(self, uow: UnitOfWork, product_id: str) -> Product | None:
        """The catalogue row, cached for PRODUCT_CACHE_S (stock is decided in the transaction by
        `reserve_stock`, never from the cache); a product not found is read again every time."""
        now = time.monotonic()
        cached = self._products.get(product_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        product = uow.products.get(product_id)
        if product is not None:
            self._products[product_id] = (now + PRODUCT_CACHE_S, product)
        return product

    def _new_order(self, cmd: CreateOrder, fingerprint: str, product: Product) -> Order:
        now = self._clock()
        account = self._router.route(product.product_id, cmd.merchant)  # once, stored on the order
        return Order(
            order_id=new_order_id(),
            out_trade_no=new_out_trade_no(now),
            user_id=cmd.user_id,
            request_id=cmd.request_id,
            fingerprint=fingerprint,
            product_id=product.product_id,
            kind=product.kind,
            quantity=cmd.quantity,
            total_fee=product.total_fee(cmd.quantity),
            description=(cmd.description or product.title)[:127],
            attach=cmd.attach or "",
            article_id=None,
            status=OrderStatus.UNPAID,
            fulfilment=Fulfilment.PENDING,
            fulfilment_reason="",
            version=1,
            expires_at=now + self._ttl,
            created_at=now,
            updated_at=now,
            account=account,
        )

    # --- reads ------------------------------------------------------------------------------
    def get_order(self, order_id: str) -> Order:
        with self._read() as uow:
            return _load(uow, order_id)

    def list_orders(
        self,
        user_id: str,
        page_size: int,
        page_token: str,
        status: OrderStatus | None,
        account: str | None = None,
    ) -> OrderPage:
        """`account`: only the orders that merchant account took (issue 18)."""
        v = Violations()
        v.identifier("user_id", user_id)
        v.int_range("page_size", page_size, 0, MAX_PAGE_SIZE)
        if account is not None:
            v.identifier("account", account)
        v.raise_if_any()
        after = decode_page_token(page_token, user_id, status, account) if page_token else None
        limit = page_size or DEFAULT_PAGE_SIZE
        with self._read() as uow:
            rows = uow.orders.list_for_user(user_id, status, after, limit + 1, account)
        page, more = rows[:limit], len(rows) > limit
        token = encode_page_token(page[-1][1], user_id, status, account) if more else ""
        return OrderPage([order for order, _ in page], token)

    # --- writes -----------------------------------------------------------------------------
    def update_order_status(
        self, order_id: str, expected_version: int, target: OrderStatus, reason: str, caller: Caller
    ) -> Order:
        """Admin moves. Refund states belong to RefundOrder and payment to the payment path."""
        v = Violations()
        v.int_range("expected_version", expected_version, 1, 2**62)
        v.text("reason", reason, 255)
        v.raise_if_any()
        if target is OrderStatus.CLOSED:
            return self.close_order(order_id, replace_actor(caller, reason), expected_version)
        order = self.get_order(order_id)
        _check_version(order, expected_version)
        check_transition(order.status, target)
        path = "payment" if order.status is OrderStatus.UNPAID else "RefundOrder"
        raise InvalidStateTransitionError(
            f"{target} is reached through {path}, not UpdateOrderStatus",
            metadata={"from": order.status.value, "to": target.value},
        )

    def close_order(self, order_id: str, caller: Caller, expected_version: int | None = None) -> Order:
        """Close at WeChat Pay first (when a prepay exists), then locally."""
        order = self.get_order(order_id)
        _check_version(order, expected_version)
        if order.status is OrderStatus.UNPAID and order.prepay_id and self._prepay_closer is not None:
            self._prepay_closer(order, caller)  # no transaction is open across this network call
        return self.close_local(order_id, caller, expected_version)

    def close_local(self, order_id: str, caller: Caller, expected_version: int | None = None) -> Order:
        """UNPAID -> CLOSED and give the stock back; the CAS makes the release happen once."""
        with self._uow() as uow:
            order = _load(uow, order_id)
            if order.status is OrderStatus.CLOSED and expected_version is None:
                return order  # closing is re-entrant, like WeChat's close
            _check_version(order, expected_version)
            now = self._clock()
            closed = uow.orders.save(order, order.close(now))
            if closed is None:
                raise _conflict(uow, order_id)
            uow.products.release_stock(order.product_id, order.quantity)
            uow.audit.record(audit(order, "status", order.status, closed.status, "closed", caller), now)
            uow.record(OrderClosed(order.order_id))
        return closed

    def attach_article(self, order_id: str, article_id: str, expected_version: int, caller: Caller) -> Order:
        v = Violations()
        v.identifier("order_id", order_id, max_len=40)
        v.identifier("article_id", article_id)
        v.int_range("expected_version", expected_version, 1, 2**62)
        v.raise_if_any()
        with self._uow() as uow:
            order = _load(uow, order_id)
            _check_version(order, expected_version)
            if order.status in {OrderStatus.CLOSED, OrderStatus.REFUNDED}:
                raise InvalidStateTransitionError(
                    f"cannot attach an article to a {order.status} order",
                    metadata={"from": order.status.value},
                )
            now = self._clock()
            updated = uow.orders.save(order, replace(order, article_id=article_id, updated_at=now))
            if updated is None:
                raise _conflict(uow, order_id)
            uow.audit.record(
                audit(order, "article", order.article_id, article_id, "article attached", caller), now
            )
        return updated


# --- GetOrder(wait_ms): the rules; the waiting itself is the server's (server/serving/waiters.py)
def validate_wait(order_id: str, wait_ms: int) -> None:
    v = Violations()
    v.identifier("order_id", order_id, max_len=40)
    v.int_range("wait_ms", wait_ms, 0, MAX_WAIT_MS)
    v.raise_if_any()


def wait_is_over(order: Order) -> bool:
    """A long-poll ends when fulfilment left PENDING, or when it never will (the order closed)."""
    return order.fulfilment is not Fulfilment.PENDING or order.status is OrderStatus.CLOSED


# --- helpers ----------------------------------------------------------------------------------
def _replay(existing: Order, fingerprint: str) -> CreateOrderResult:
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyReusedError(
            "request_id was already used for a different request",
            metadata={"order_id": existing.order_id},
        )
    return CreateOrderResult(existing, replayed=True)


def _resolve_conflict(uow: UnitOfWork, cmd: CreateOrder, fingerprint: str) -> CreateOrderResult:
    """The insert lost to a unique index: read the winner and decide what the caller gets."""
    winner = uow.orders.get_by_key(cmd.user_id, cmd.request_id)
    if winner is not None:
        return _replay(winner, fingerprint)
    unpaid = uow.orders.get_unpaid(cmd.user_id, cmd.product_id)
    if unpaid is None:  # the unpaid order was closed or paid between our insert and this read
        raise VersionConflictError("a concurrent change won; retry the request")
    if unpaid.product_id == cmd.product_id and unpaid.quantity == cmd.quantity:
        return CreateOrderResult(unpaid, deduplicated=True)
    raise UnpaidOrderExistsError(
        "the user already has an unpaid order for this product",
        metadata={"order_id": unpaid.order_id},
    )


def _load(uow: ReadUnitOfWork, order_id: str) -> Order:
    _require_id("order_id", order_id)
    return require_order(uow, order_id)


def _require_id(field: str, value: str) -> None:
    v = Violations()
    v.identifier(field, value, max_len=40)
    v.raise_if_any()


def _check_version(order: Order, expected_version: int | None) -> None:
    if expected_version is not None and order.version != expected_version:
        raise VersionConflictError(
            f"order is at version {order.version}, not {expected_version}",
            metadata={"current_version": str(order.version)},
        )


def _conflict(uow: UnitOfWork, order_id: str) -> VersionConflictError:
    current = uow.orders.get(order_id)
    version = str(current.version) if current else "unknown"
    return VersionConflictError("order changed concurrently", metadata={"current_version": version})
