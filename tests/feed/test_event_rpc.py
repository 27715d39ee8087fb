"""EventService over a real gRPC server on 127.0.0.1:0, on SQLite and PostgreSQL: who may subscribe,
bad input with a reason, live delivery in order, and resuming after the acknowledgement."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from orderpay.v1 import events_pb2, events_pb2_grpc, order_service_pb2, order_service_pb2_grpc
from server.app import App
from server.bootstrap import build_app
from tests.conftest import settings_for
from tests.support.rich_status import Failure, failure_of
from tests.support.serving import ServingThread

FEED = (("authorization", "Bearer test-feed-token"),)
BFF = (("authorization", "Bearer test-bff-token"),)
ADMIN = (("authorization", "Bearer test-admin-token"),)
TOKENS = "bff:test-bff-token,admin:test-admin-token,feed:test-feed-token"


@pytest.fixture(scope="module")
def feed_app(database_url: str) -> Iterator[App]:
    application = build_app(settings_for(database_url, api_tokens=TOKENS), payments_required=False)
    application.catalogue.load_file()
    yield application
    application.close()


@pytest.fixture(scope="module")
def served(feed_app: App) -> Iterator[ServingThread]:
    server = ServingThread(feed_app)
    yield server
    server.stop(1)


@pytest.fixture(scope="module")
def channel(served: ServingThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as ch:
        yield ch


@pytest.fixture(scope="module")
def events(channel: grpc.Channel) -> events_pb2_grpc.EventServiceStub:
    return events_pb2_grpc.EventServiceStub(channel)


@pytest.fixture(scope="module")
def orders(channel: grpc.Channel) -> order_service_pb2_grpc.OrderServiceStub:
    return order_service_pb2_grpc.OrderServiceStub(channel)


def _first(call: Any, *args: Any, **kwargs: Any) -> Any:
    result = call(*args, **kwargs)
    if hasattr(result, "SerializeToString"):
        return result
    return next(iter(result))  # a stream: the status comes with the first read


def refused(call: Any, *args: Any, **kwargs: Any) -> Failure:
    with pytest.raises(grpc.RpcError) as info:
        _first(call, *args, **kwargs)
    return failure_of(info.value)


def create(orders: Any, user: str, key: str) -> str:
    request = order_service_pb2.CreateOrderRequest(
        request_id=key, user_id=user, product_id="vip-month", quantity=1
    )
    return str(orders.CreateOrder(request, metadata=BFF).order.order_id)


def register(events: Any, name: str) -> events_pb2.RegisterSubscriberResponse:
    return events.RegisterSubscriber(events_pb2.RegisterSubscriberRequest(subscriber=name), metadata=FEED)


def test_no_token_is_unauthenticated(events: Any) -> None:
    assert refused(events.Watch, events_pb2.WatchRequest()).code is grpc.StatusCode.UNAUTHENTICATED
    assert refused(events.Ack, events_pb2.AckRequest()).code is grpc.StatusCode.UNAUTHENTICATED


def test_the_bff_may_not_subscribe_and_the_feed_role_may_do_nothing_else(events: Any, orders: Any) -> None:
    assert (
        refused(events.Watch, events_pb2.WatchRequest(), metadata=BFF).code
        is grpc.StatusCode.PERMISSION_DENIED
    )
    request = events_pb2.RegisterSubscriberRequest(subscriber="x")
    assert refused(events.RegisterSubscriber, request, metadata=BFF).code is grpc.StatusCode.PERMISSION_DENIED
    create_request = order_service_pb2.CreateOrderRequest(request_id="k", user_id="u", product_id="vip-month")
    failure = refused(orders.CreateOrder, create_request, metadata=FEED)
    assert failure.code is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("request_fields", "code", "reason"),
    [
        ({"subscriber": "nobody-here"}, grpc.StatusCode.NOT_FOUND, "SUBSCRIBER_NOT_FOUND"),
        ({"from_position": 10**12}, grpc.StatusCode.INVALID_ARGUMENT, "POSITION_IN_FUTURE"),
        ({"types": [99]}, grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_EVENT_TYPE"),
        ({"types": [0]}, grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_EVENT_TYPE"),
        ({"subscriber": "no spaces"}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    ],
)
def test_bad_watch_requests_say_why(
    events: Any, request_fields: dict[str, Any], code: Any, reason: str
) -> None:
    failure = refused(events.Watch, events_pb2.WatchRequest(**request_fields), metadata=FEED)
    assert (failure.code, failure.reason) == (code, reason)


def test_bad_acks_say_why(events: Any, rid: str) -> None:
    failure = refused(events.Ack, events_pb2.AckRequest(subscriber=f"ghost-{rid}", position=0), metadata=FEED)
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "SUBSCRIBER_NOT_FOUND")
    register(events, f"s-{rid}")
    failure = refused(
        events.Ack, events_pb2.AckRequest(subscriber=f"s-{rid}", position=10**12), metadata=FEED
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "POSITION_IN_FUTURE")


def test_a_watcher_sees_new_events_live_in_order_and_resumes_after_its_ack(
    events: Any, orders: Any, rid: str
) -> None:
    name = f"crm-{rid}"
    start = register(events, name).head_position
    events.Ack(events_pb2.AckRequest(subscriber=name, position=start), metadata=FEED)
    watch = events.Watch(events_pb2.WatchRequest(subscriber=name), metadata=FEED, timeout=60)
    seen: list[events_pb2.FeedEvent] = []
    got_six = threading.Event()

    def consume() -> None:
        for response in watch:
            seen.append(response.event)
            if len([e for e in seen if e.order.user_id.startswith(f"u-{rid}")]) == 6:
                got_six.set()
                return

    reader = threading.Thread(target=consume)
    reader.start()
    ids = [create(orders, f"u-{rid}-{i}", f"k-{i}") for i in range(6)]  # after the stream is open
    assert got_six.wait(30)
    watch.cancel()
    reader.join(10)
    positions = [e.position for e in seen]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    assert [e.order_id for e in seen if e.order_id in ids] == ids
    assert {e.type for e in seen if e.order_id in ids} == {events_pb2.EVENT_TYPE_ORDER_CREATED}

    acked = seen[2].position
    events.Ack(events_pb2.AckRequest(subscriber=name, position=acked), metadata=FEED)
    again = events.Watch(events_pb2.WatchRequest(subscriber=name), metadata=FEED, timeout=60)
    first = next(iter(again)).event
    again.cancel()
    assert first.position == acked + 1


def test_admin_may_tail_with_a_type_filter_from_a_position(events: Any, orders: Any, rid: str) -> None:
    start = register(events, f"probe-{rid}").head_position
    order_id = create(orders, f"u-{rid}", "k")
    request = events_pb2.WatchRequest(from_position=start, types=[events_pb2.EVENT_TYPE_ORDER_CREATED])
    watch = events.Watch(request, metadata=ADMIN, timeout=60)
    first = next(iter(watch)).event
    watch.cancel()
    assert first.type == events_pb2.EVENT_TYPE_ORDER_CREATED
    assert first.position > start
    assert first.order_id == order_id  # the module's tests run one at a time: nothing else was created
