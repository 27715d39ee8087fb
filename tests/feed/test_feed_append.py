"""CreateOrder's feed entry, written with the order (in the insert-first statement on PostgreSQL): the
stored message carries the position the row got, a conflict appends nothing, and a limited product's
order (whose stock row is locked after the insert) still gets exactly one entry, appended at commit."""

from __future__ import annotations

import secrets

import peewee as pw
import pytest

from orderpay.v1 import events_pb2
from server.adapters.tables import EventLogRow
from server.app import App
from server.domain.catalogue import Product, ProductKind
from server.domain.order import CreateOrder
from server.service.context import Caller

BFF = Caller("bff", "test")


def entries_of(app: App, order_id: str) -> list[tuple[int, events_pb2.FeedEvent]]:
    """(row position, stored message) of every feed entry of the order."""
    with app.db.connection_context():
        rows = EventLogRow.select().where(EventLogRow.order_id == order_id).order_by(EventLogRow.position)
        return [(row.position, events_pb2.FeedEvent.FromString(bytes(row.payload))) for row in rows]


def test_the_created_entry_carries_its_row_position_and_a_replay_appends_nothing(app: App, rid: str) -> None:
    cmd = CreateOrder(request_id="k", user_id=f"u-{rid}", product_id="vip-month", quantity=1)
    first = app.orders.create_order(cmd, BFF).order
    again = app.orders.create_order(CreateOrder("k2", f"u-{rid}", "vip-month", 1), BFF)  # dedup: conflict
    assert again.deduplicated
    [(position, event)] = entries_of(app, first.order_id)
    assert event.position == position
    assert event.type == events_pb2.EVENT_TYPE_ORDER_CREATED
    assert (event.order.order_id, event.order.user_id) == (first.order_id, f"u-{rid}")


def test_many_orders_get_consecutive_positions_written_into_their_messages(app: App, rid: str) -> None:
    """From 128 on, the position takes two varint bytes in the stored message."""
    before = app.feed.head()
    created = [
        app.orders.create_order(CreateOrder(f"k{i}", f"u-{rid}-{i}", "vip-month", 1), BFF).order
        for i in range(130)
    ]
    positions = [entries_of(app, order.order_id)[0] for order in created]
    assert [row for row, _ in positions] == list(range(before + 1, before + 131))
    assert all(event.position == row for row, event in positions)


def test_a_limited_product_order_gets_one_entry_at_commit(app: App, rid: str) -> None:
    product = f"p-{rid}"
    app.catalogue.load([Product(product, ProductKind.GOODS, "t", "d", 100, stock=5)])
    order = app.orders.create_order(CreateOrder("k", f"u-{rid}", product, 2), BFF).order
    [(position, event)] = entries_of(app, order.order_id)
    assert (event.position, event.type) == (position, events_pb2.EVENT_TYPE_ORDER_CREATED)


@pytest.mark.parametrize("position", [1, 127, 128, 300, 16_383, 16_384, 2**31, 2**56 + 5])
def test_postgres_writes_the_position_byte_for_byte_as_code_would(app: App, position: int) -> None:
    """orderpay_feed_event (migration 0012) puts field 1 in front of the message serialized without it."""
    if not isinstance(app.db, pw.PostgresqlDatabase):
        pytest.skip("SQLite's append serializes with the position in Python")
    fields = {"type": events_pb2.EVENT_TYPE_ORDER_PAID, "order_id": secrets.token_hex(4), "account": "a"}
    rest = events_pb2.FeedEvent(**fields).SerializeToString()
    with app.db.connection_context():
        got = app.db.execute_sql("SELECT orderpay_feed_event(%s, %s)", (position, rest)).fetchone()[0]
    assert bytes(got) == events_pb2.FeedEvent(position=position, **fields).SerializeToString()
