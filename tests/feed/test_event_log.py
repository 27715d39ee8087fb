"""The event log on both databases: gap-free positions in commit order under concurrent writers,
resuming, acknowledgements, and a purge that never drops what a subscriber has not acknowledged."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from orderpay.v1 import events_pb2
from server.app import App
from server.domain.errors import (
    InvalidArgumentError,
    PositionInFutureError,
    SubscriberNotFoundError,
    UnknownEventTypeError,
)
from server.domain.feed import FeedFilter, FeedType
from server.domain.order import CreateOrder
from server.service.context import Caller
from server.service.feed import FeedService

BFF = Caller("bff", "test")


def create(app: App, user: str) -> str:
    cmd = CreateOrder(request_id=secrets.token_hex(6), user_id=user, product_id="vip-month", quantity=1)
    return app.orders.create_order(cmd, BFF).order.order_id


EVERYTHING = FeedFilter()


def read_all(app: App, after: int, chosen: FeedFilter = EVERYTHING) -> list[events_pb2.FeedEvent]:
    out = []
    while True:
        batch = app.feed.read(after, chosen, 50)
        out.extend(events_pb2.FeedEvent.FromString(e.payload) for e in batch.events)
        if after == batch.scanned_to:
            return out
        after = batch.scanned_to


def test_an_order_created_is_on_the_feed_with_its_public_message(app: App, rid: str) -> None:
    before = app.feed.head()
    order_id = create(app, f"u-{rid}")
    events = read_all(app, before)
    mine = [e for e in events if e.order_id == order_id]
    assert [e.type for e in mine] == [events_pb2.EVENT_TYPE_ORDER_CREATED]
    assert mine[0].order.order_id == order_id
    assert mine[0].account == "default"
    assert mine[0].position > before


def test_closing_an_order_appends_order_closed(app: App, rid: str) -> None:
    order_id = create(app, f"u-{rid}")
    before = app.feed.head()
    app.orders.close_local(order_id, BFF)
    events = read_all(app, before)
    assert [(e.type, e.order.status) for e in events if e.order_id == order_id] == [
        (events_pb2.EVENT_TYPE_ORDER_CLOSED, 5)
    ]


def test_concurrent_writers_get_gap_free_positions_and_readers_never_skip(app: App, rid: str) -> None:
    """Eight threads create orders while a reader follows the feed from where it is: every position
    the reader ends with is there exactly once, in order, and none was skipped while writers raced."""
    start = app.feed.head()
    stop = threading.Event()
    seen: list[int] = []

    def follow() -> None:
        after = start
        while True:
            done = stop.is_set()
            batch = app.feed.read(after, FeedFilter(), 25)
            seen.extend(e.position for e in batch.events)
            after = batch.scanned_to
            if done and not batch.events:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: create(app, f"u-{rid}-{i}"), range(80)))
    stop.set()
    reader.join(60)
    end = app.feed.head()
    assert end - start == 80
    assert seen == list(range(start + 1, end + 1))


def test_filters_by_type_and_account(app: App, rid: str) -> None:
    before = app.feed.head()
    order_id = create(app, f"u-{rid}")
    app.orders.close_local(order_id, BFF)
    closed = read_all(app, before, FeedFilter(frozenset({FeedType.ORDER_CLOSED})))
    assert {e.type for e in closed} == {events_pb2.EVENT_TYPE_ORDER_CLOSED}
    assert read_all(app, before, FeedFilter(account="another-merchant")) == []


def test_watch_start_refuses_bad_input(app: App, rid: str) -> None:
    with pytest.raises(SubscriberNotFoundError):
        app.feed.start(f"nobody-{rid}", 0, [], "")
    with pytest.raises(PositionInFutureError):
        app.feed.start("", app.feed.head() + 10, [], "")
    with pytest.raises(UnknownEventTypeError):
        app.feed.start("", 0, ["ORDER_EXPLODED"], "")
    with pytest.raises(InvalidArgumentError):
        app.feed.start("bad name!", 0, [], "")
    with pytest.raises(InvalidArgumentError):
        app.feed.start("", -1, [], "")


def test_a_subscriber_resumes_after_its_acknowledgement(app: App, rid: str) -> None:
    name = f"crm-{rid}"
    registered = app.feed.register(name)
    assert app.feed.register(name) == registered  # idempotent
    create(app, f"u-{rid}")
    head = app.feed.head()
    assert app.feed.start(name, None, [], "").after == registered.acked_position
    assert app.feed.ack(name, head).acked_position == head
    assert app.feed.ack(name, head - 1).acked_position == head  # never backwards
    assert app.feed.start(name, None, [], "").after == head
    with pytest.raises(PositionInFutureError):
        app.feed.ack(name, head + 1000)
    with pytest.raises(SubscriberNotFoundError):
        app.feed.ack(f"ghost-{rid}", 0)


def test_purge_keeps_what_a_registered_subscriber_has_not_acknowledged(app: App, rid: str) -> None:
    name = f"wms-{rid}"
    app.feed.register(name)
    app.feed.ack(name, app.feed.head())
    ours = [create(app, f"u-{rid}-{i}") for i in range(3)]
    acked = app.feed.head() - 1  # the subscriber acknowledged all but the last
    app.feed.ack(name, acked)
    for other in app.feed.lags():  # other tests' subscribers must not hold this one back
        if other.subscriber.name != name:
            app.feed.ack(other.subscriber.name, app.feed.head())
    assert app.feed.purgeable_below() == acked
    aged = _aged(app, timedelta(days=app.settings.feed_retention_days + 1))
    deleted = aged.purge()
    assert deleted >= 2
    remaining = {e.order_id for e in read_all(app, 0)}
    assert ours[-1] in remaining
    assert ours[0] not in remaining


def _aged(app: App, by: timedelta) -> FeedService:
    """The same feed, seen from a later day (what `orderpay purge` runs after the retention)."""
    return FeedService(
        app.uow,
        app.read,
        lambda: app.clock() + by,
        retention=timedelta(days=app.settings.feed_retention_days),
        commits=app.feed.commits,
    )
