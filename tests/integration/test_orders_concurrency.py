"""Order use cases on a real database (SQLite and PostgreSQL) with real threads."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.adapters.tables import OrderEventRow, OrderRow, ProductRow
from server.app import App
from server.domain.catalogue import Product, ProductKind
from server.domain.errors import (
    DomainError,
    IdempotencyKeyReusedError,
    InvalidStateTransitionError,
    OutOfStockError,
    UnpaidOrderExistsError,
    VersionConflictError,
)
from server.domain.order import CreateOrder, OrderStatus
from server.service.context import Caller

BFF = Caller("bff", "test")


def add_product(app: App, product_id: str, stock: int | None = None, price: int = 100) -> None:
    app.catalogue.load([Product(product_id, ProductKind.GOODS, "t", "d", price, stock=stock)])


def stock_of(product_id: str) -> int | None:
    return ProductRow.get(ProductRow.product_id == product_id).stock


def test_concurrent_duplicates_make_one_order_per_key(app: App, rid: str) -> None:
    keys = [(f"u-{rid}-{i}", f"req-{i}") for i in range(50)]
    calls = [keys[i % 50] for i in range(1000)]

    def create(key: tuple[str, str]) -> str:
        cmd = CreateOrder(request_id=key[1], user_id=key[0], product_id="vip-month", quantity=1)
        return app.orders.create_order(cmd, BFF).order.order_id

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(create, calls))
    by_key: dict[tuple[str, str], set[str]] = {}
    for key, order_id in zip(calls, results, strict=True):
        by_key.setdefault(key, set()).add(order_id)
    assert all(len(ids) == 1 for ids in by_key.values())
    with app.db.connection_context():
        rows = OrderRow.select().where(OrderRow.user_id.startswith(f"u-{rid}-")).count()
    assert rows == 50


def test_same_key_different_request_is_refused(app: App, rid: str) -> None:
    first = CreateOrder(request_id="k", user_id=f"u-{rid}", product_id="vip-month", quantity=1)
    app.orders.create_order(first, BFF)
    with pytest.raises(IdempotencyKeyReusedError):
        app.orders.create_order(CreateOrder("k", f"u-{rid}", "vip-month", 1, attach="other"), BFF)


def test_replay_is_flagged(app: App, rid: str) -> None:
    cmd = CreateOrder(request_id="k", user_id=f"u-{rid}", product_id="vip-month", quantity=1)
    first = app.orders.create_order(cmd, BFF)
    again = app.orders.create_order(cmd, BFF)
    assert (first.replayed, again.replayed) == (False, True)
    assert again.order == first.order


def test_one_unpaid_order_per_user_and_product_under_concurrency(app: App, rid: str) -> None:
    user = f"u-{rid}"

    def create(i: int) -> tuple[str, bool]:
        result = app.orders.create_order(CreateOrder(f"k{i}", user, "vip-year", 1), BFF)
        return result.order.order_id, result.deduplicated

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(create, range(40)))
    assert len({order_id for order_id, _ in results}) == 1
    assert sum(1 for _, dedup in results if not dedup) == 1
    with app.db.connection_context():
        unpaid = OrderRow.select().where((OrderRow.user_id == user) & (OrderRow.status == "UNPAID")).count()
    assert unpaid == 1


def test_new_key_with_other_quantity_while_unpaid_fails(app: App, rid: str) -> None:
    first = app.orders.create_order(CreateOrder("a", f"u-{rid}", "vip-year", 1), BFF)
    with pytest.raises(UnpaidOrderExistsError) as info:
        app.orders.create_order(CreateOrder("b", f"u-{rid}", "vip-year", 2), BFF)
    assert info.value.metadata["order_id"] == first.order.order_id


def test_stock_is_never_oversold(app: App, rid: str) -> None:
    product = f"p-{rid}"
    add_product(app, product, stock=10)

    def create(i: int) -> str:
        try:
            app.orders.create_order(CreateOrder("k", f"u-{rid}-{i}", product, 1), BFF)
        except OutOfStockError:
            return "OUT_OF_STOCK"
        return "OK"

    with ThreadPoolExecutor(max_workers=25) as pool:
        outcomes = Counter(pool.map(create, range(50)))
    assert outcomes == Counter({"OK": 10, "OUT_OF_STOCK": 40})
    with app.db.connection_context():
        assert stock_of(product) == 0
        assert OrderRow.select().where(OrderRow.product_id == product).count() == 10


def test_closing_gives_stock_back_exactly_once(app: App, rid: str) -> None:
    product = f"p-{rid}"
    add_product(app, product, stock=3)
    order = app.orders.create_order(CreateOrder("k", f"u-{rid}", product, 2), BFF).order

    def close(_: int) -> str:
        try:
            return app.orders.close_order(order.order_id, BFF).status.value
        except (VersionConflictError, InvalidStateTransitionError) as exc:
            return exc.reason

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = set(pool.map(close, range(8)))
    assert "CLOSED" in outcomes
    with app.db.connection_context():
        assert stock_of(product) == 3
        closes = OrderEventRow.select().where(
            (OrderEventRow.order_id == order.order_id) & (OrderEventRow.to_value == "CLOSED")
        )
        assert closes.count() == 1


def test_versioned_updates_never_lose_a_write(app: App, rid: str) -> None:
    order = app.orders.create_order(CreateOrder("k", f"u-{rid}", "vip-month", 1), BFF).order

    def attach(i: int) -> str:
        try:
            app.orders.attach_article(order.order_id, f"art-{i}", order.version, BFF)
        except VersionConflictError as exc:
            return f"{exc.reason}@{exc.metadata['current_version']}"
        return f"art-{i}"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attach, range(16)))
    assert outcomes.count(f"VERSION_CONFLICT@{order.version + 1}") == 15
    winners = [o for o in outcomes if not o.startswith("VERSION_CONFLICT")]
    assert len(winners) == 1
    final = app.orders.get_order(order.order_id)
    assert final.article_id == winners[0]
    assert final.version == order.version + 1


def test_status_updates_by_version_have_one_winner(app: App, rid: str) -> None:
    order = app.orders.create_order(CreateOrder("k", f"u-{rid}", "vip-month", 1), BFF).order
    admin = Caller("admin", "t")

    def close(_: int) -> str:
        try:
            app.orders.update_order_status(order.order_id, order.version, OrderStatus.CLOSED, "ops", admin)
        except DomainError as exc:
            return exc.reason
        return "WON"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = Counter(pool.map(close, range(16)))
    assert outcomes["WON"] == 1
    assert outcomes["VERSION_CONFLICT"] == 15
    final = app.orders.get_order(order.order_id)
    assert (final.status, final.version) == (OrderStatus.CLOSED, order.version + 1)


def test_migrations_are_idempotent(app: App) -> None:
    from server.adapters.db import migrate

    assert migrate(app.db) == []


def test_a_conflicting_insert_writes_neither_the_order_nor_its_audit_row(app: App, rid: str) -> None:
    """Insert-first: a duplicate key (or a second unpaid order) is a no-op answered from the winner,
    with exactly one order and one 'created' audit row, and no savepoint to roll back."""
    user = f"u-{rid}"
    first = app.orders.create_order(CreateOrder("k", user, "vip-month", 1), BFF)
    again = app.orders.create_order(CreateOrder("k", user, "vip-month", 1), BFF)
    other_key = app.orders.create_order(CreateOrder("k2", user, "vip-month", 1), BFF)
    assert (again.replayed, again.order) == (True, first.order)
    assert (other_key.deduplicated, other_key.order.order_id) == (True, first.order.order_id)
    with app.db.connection_context():
        assert OrderRow.select().where(OrderRow.user_id == user).count() == 1
        events = OrderEventRow.select().where(OrderEventRow.order_id == first.order.order_id)
        assert [(e.field, e.to_value, e.cause) for e in events] == [("status", "UNPAID", "created")]
