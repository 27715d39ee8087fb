"""OrderService and VipService over a real gRPC server on 127.0.0.1:0, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
import structlog
from structlog.testing import LogCapture

from orderpay.v1 import order_pb2, order_service_pb2, pay_service_pb2, vip_service_pb2
from server.adapters.tables import ProductRow
from server.app import App
from server.domain.catalogue import Product, ProductKind
from server.log_setup import CALLS, merge_call_fields
from server.metrics import REGISTRY
from tests.support.rich_status import Failure, failure_of
from tests.support.rpc_calls import create, refused
from tests.support.tokens import ADMIN, BFF

pb = order_service_pb2


def test_concurrent_duplicates_create_one_order_per_key(orders: Any, rid: str) -> None:
    keys = [(f"u-{rid}-{i % 50}", f"k-{i % 50}") for i in range(1000)]

    def call(key: tuple[str, str]) -> tuple[tuple[str, str], str, bool]:
        response, call_info = orders.CreateOrder.with_call(
            pb.CreateOrderRequest(request_id=key[1], user_id=key[0], product_id="vip-month", quantity=1),
            metadata=BFF,
        )
        replayed = ("x-idempotent-replayed", "true") in call_info.initial_metadata()
        return key, response.order.order_id, replayed

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(call, keys))
    ids_by_key: dict[tuple[str, str], set[str]] = {}
    for key, order_id, _ in results:
        ids_by_key.setdefault(key, set()).add(order_id)
    assert len(ids_by_key) == 50
    assert all(len(ids) == 1 for ids in ids_by_key.values())
    assert sum(1 for *_, replayed in results if not replayed) == 50


def test_create_order_outcomes_are_counted_by_the_orders_account(orders: Any, rid: str) -> None:
    def count(account: str, outcome: str) -> float:
        labels = {"account": account, "outcome": outcome}
        return REGISTRY.get_sample_value("orderpay_orders_total", labels) or 0.0

    before = {o: count("default", o) for o in ("created", "replayed", "deduplicated")}
    order = create(orders, f"u-{rid}", "k").order
    assert order.account == "default"  # the only account this app is configured with
    create(orders, f"u-{rid}", "k")  # the same key: a replay
    create(orders, f"u-{rid}", "k2")  # a new key for the same unpaid product: deduplicated
    after = {o: count("default", o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {"created": 1, "replayed": 1, "deduplicated": 1}
    assert count("other", "created") == 0


def test_same_key_different_request_is_already_exists(orders: Any, rid: str) -> None:
    create(orders, f"u-{rid}", "k")
    failure = refused(create, orders, f"u-{rid}", "k", quantity=2)
    assert (failure.code, failure.reason, failure.domain) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
        "orderpay",
    )


def test_new_key_for_an_unpaid_product_returns_that_order(orders: Any, rid: str) -> None:
    first = create(orders, f"u-{rid}", "a").order
    response, call = orders.CreateOrder.with_call(
        pb.CreateOrderRequest(request_id="b", user_id=f"u-{rid}", product_id="vip-month", quantity=1),
        metadata=BFF,
    )
    assert response.order.order_id == first.order_id
    assert ("x-deduplicated", "unpaid-order") in call.initial_metadata()
    failure = refused(create, orders, f"u-{rid}", "c", quantity=3)
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "UNPAID_ORDER_EXISTS")
    assert failure.metadata["order_id"] == first.order_id


def test_stock_ten_fifty_buyers(app: App, orders: Any, rid: str) -> None:
    product = f"p-{rid}"
    app.catalogue.load([Product(product, ProductKind.GOODS, "mug", "", 100, stock=10)])

    def buy(i: int) -> str:
        try:
            create(orders, f"u-{rid}-{i}", "k", product=product)
        except grpc.RpcError as error:
            failure = failure_of(error)
            assert failure.code is grpc.StatusCode.FAILED_PRECONDITION
            return failure.reason
        return "OK"

    with ThreadPoolExecutor(max_workers=25) as pool:
        outcomes = Counter(pool.map(buy, range(50)))
    assert outcomes == Counter({"OK": 10, "OUT_OF_STOCK": 40})
    with app.db.connection_context():
        assert ProductRow.get(ProductRow.product_id == product).stock == 0


def test_close_releases_stock_once_and_is_reentrant(app: App, orders: Any, rid: str) -> None:
    product = f"p-{rid}"
    app.catalogue.load([Product(product, ProductKind.GOODS, "mug", "", 100, stock=1)])
    order = create(orders, f"u-{rid}", "k", product=product).order
    assert refused(create, orders, f"u2-{rid}", "k", product=product).reason == "OUT_OF_STOCK"
    closed = orders.CloseOrder(pb.CloseOrderRequest(order_id=order.order_id), metadata=BFF).order
    again = orders.CloseOrder(pb.CloseOrderRequest(order_id=order.order_id), metadata=BFF).order
    assert closed.status == again.status == order_pb2.ORDER_STATUS_CLOSED
    assert closed.legacy_status == -1
    assert again.version == closed.version
    create(orders, f"u2-{rid}", "k", product=product)  # the one unit came back, exactly once
    assert refused(create, orders, f"u3-{rid}", "k", product=product).reason == "OUT_OF_STOCK"


@pytest.mark.parametrize("rpc", ["UpdateOrderStatus", "AttachArticle"])
def test_sixteen_writers_with_the_version_they_read(orders: Any, rid: str, rpc: str) -> None:
    order = create(orders, f"u-{rid}", "k").order

    def write(i: int) -> str:
        try:
            if rpc == "UpdateOrderStatus":
                request = pb.UpdateOrderStatusRequest(
                    order_id=order.order_id,
                    expected_version=order.version,
                    status=order_pb2.ORDER_STATUS_CLOSED,
                    reason=f"ops {i}",
                )
                orders.UpdateOrderStatus(request, metadata=ADMIN)
            else:
                request = pb.AttachArticleRequest(
                    order_id=order.order_id, article_id=f"art-{i}", expected_version=order.version
                )
                orders.AttachArticle(request, metadata=BFF)
        except grpc.RpcError as error:
            failure = failure_of(error)
            assert failure.code is grpc.StatusCode.ABORTED
            assert failure.metadata["current_version"] == str(order.version + 1)
            return failure.reason
        return "WON"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = Counter(pool.map(write, range(16)))
    assert outcomes == Counter({"WON": 1, "VERSION_CONFLICT": 15})
    final = orders.GetOrder(pb.GetOrderRequest(order_id=order.order_id), metadata=BFF).order
    assert final.version == order.version + 1


INVALID_CREATES = [
    ({"request_id": ""}, "request_id"),
    ({"request_id": "k" * 129}, "request_id"),
    ({"user_id": ""}, "user_id"),
    ({"user_id": "u" * 65}, "user_id"),
    ({"user_id": "has space"}, "user_id"),
    ({"product_id": ""}, "product_id"),
    ({"quantity": 0}, "quantity"),
    ({"quantity": -1}, "quantity"),
    ({"quantity": 1000}, "quantity"),
    ({"quantity": 2**31 - 1}, "quantity"),
    ({"description": "d" * 128}, "description"),
    ({"description": "emoji \U0001f600"}, "description"),
    ({"attach": "a" * 129}, "attach"),
    ({"attach": "bell \x07"}, "attach"),
]


@pytest.mark.parametrize(("override", "field"), INVALID_CREATES)
def test_invalid_create_requests_name_the_field(
    orders: Any, rid: str, override: dict[str, Any], field: str
) -> None:
    request = {"request_id": "k", "user_id": f"u-{rid}", "product_id": "vip-month", "quantity": 1, **override}
    failure = refused(orders.CreateOrder, pb.CreateOrderRequest(**request), metadata=BFF)
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert field in failure.fields


def test_unknown_product_and_order_are_not_found(orders: Any, rid: str) -> None:
    failure = refused(create, orders, f"u-{rid}", "k", product="no-such-product")
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "PRODUCT_NOT_FOUND")
    failure = refused(orders.GetOrder, pb.GetOrderRequest(order_id="ord_missing"), metadata=BFF)
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND")


def test_illegal_transitions_and_unspecified_status(orders: Any, rid: str) -> None:
    order = create(orders, f"u-{rid}", "k").order

    def update(status: int) -> Failure:
        request = pb.UpdateOrderStatusRequest(
            order_id=order.order_id, expected_version=order.version, status=status, reason="x"
        )
        return refused(orders.UpdateOrderStatus, request, metadata=ADMIN)

    refunded = update(order_pb2.ORDER_STATUS_REFUNDED)
    assert (refunded.code, refunded.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "INVALID_STATE_TRANSITION",
    )
    assert refunded.metadata == {"from": "UNPAID", "to": "REFUNDED"}
    unspecified = update(order_pb2.ORDER_STATUS_UNSPECIFIED)
    assert (unspecified.code, unspecified.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"status"})


def test_bad_page_tokens_and_sizes(orders: Any, rid: str) -> None:
    for token in ("garbage", "eyJ0IjoxfQ", "Zm9v"):
        failure = refused(
            orders.ListOrders, pb.ListOrdersRequest(user_id=f"u-{rid}", page_token=token), metadata=BFF
        )
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"page_token"})
    failure = refused(
        orders.ListOrders, pb.ListOrdersRequest(user_id=f"u-{rid}", page_size=101), metadata=BFF
    )
    assert failure.fields == {"page_size"}
    wait = refused(orders.GetOrder, pb.GetOrderRequest(order_id="ord_x", wait_ms=20_001), metadata=BFF)
    assert wait.fields == {"wait_ms"}


def test_list_orders_pages_newest_first_and_tokens_bind_the_query(orders: Any, rid: str) -> None:
    user = f"u-{rid}"
    products = ["vip-month", "vip-quarter", "vip-year", "article-deep-dive", "mug-limited"]
    created = [create(orders, user, f"k{i}", product=p).order.order_id for i, p in enumerate(products)]
    seen, token, pages = [], "", 0
    while True:
        page = orders.ListOrders(
            pb.ListOrdersRequest(user_id=user, page_size=2, page_token=token), metadata=BFF
        )
        seen += [o.order_id for o in page.orders]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert (seen, pages) == (list(reversed(created)), 3)
    first = orders.ListOrders(pb.ListOrdersRequest(user_id=user, page_size=2), metadata=BFF)
    failure = refused(
        orders.ListOrders,
        pb.ListOrdersRequest(user_id="someone-else", page_size=2, page_token=first.next_page_token),
        metadata=BFF,
    )
    assert failure.fields == {"page_token"}
    closed = orders.ListOrders(
        pb.ListOrdersRequest(user_id=user, status=order_pb2.ORDER_STATUS_CLOSED), metadata=BFF
    )
    assert list(closed.orders) == []


def test_auth_roles(orders: Any, pay: Any, rid: str) -> None:
    request = pb.CreateOrderRequest(request_id="k", user_id=f"u-{rid}", product_id="vip-month", quantity=1)
    assert refused(orders.CreateOrder, request).code is grpc.StatusCode.UNAUTHENTICATED
    wrong = (("authorization", "Bearer nope"),)
    assert refused(orders.CreateOrder, request, metadata=wrong).reason == "UNAUTHENTICATED"
    update = pb.UpdateOrderStatusRequest(
        order_id="ord_x", expected_version=1, status=order_pb2.ORDER_STATUS_CLOSED
    )
    denied = refused(orders.UpdateOrderStatus, update, metadata=BFF)
    assert (denied.code, denied.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
    refund = pay_service_pb2.RefundOrderRequest(order_id="ord_x", out_refund_no="r", amount=1)
    assert refused(pay.RefundOrder, refund, metadata=BFF).code is grpc.StatusCode.PERMISSION_DENIED


def test_pay_service_is_unimplemented_without_credentials(pay: Any) -> None:
    with pytest.raises(grpc.RpcError) as info:
        pay.SyncPayment(pay_service_pb2.SyncPaymentRequest(order_id="ord_x"), metadata=BFF)
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_request_id_is_echoed_or_generated(orders: Any, rid: str) -> None:
    request = pb.CreateOrderRequest(request_id="k", user_id=f"u-{rid}", product_id="vip-month", quantity=1)
    _, call = orders.CreateOrder.with_call(request, metadata=(*BFF, ("x-request-id", f"trace-{rid}")))
    assert ("x-request-id", f"trace-{rid}") in call.initial_metadata()
    _, call = orders.CreateOrder.with_call(request, metadata=BFF)
    generated = dict(call.initial_metadata())["x-request-id"]
    assert len(generated) == 32
    with pytest.raises(grpc.RpcError) as info:
        orders.GetOrder(
            pb.GetOrderRequest(order_id="ord_missing"), metadata=(*BFF, ("x-request-id", "t-err"))
        )
    assert ("x-request-id", "t-err") in info.value.trailing_metadata()  # type: ignore[attr-defined]


def test_get_order_wait_returns_pending_for_unpaid(orders: Any, rid: str) -> None:
    order = create(orders, f"u-{rid}", "k").order
    waited = orders.GetOrder(pb.GetOrderRequest(order_id=order.order_id, wait_ms=200), metadata=BFF).order
    assert waited.fulfilment == order_pb2.FULFILMENT_PENDING
    assert waited.total_fee == 1800  # computed from the catalogue, never taken from the client


def test_vip_plans_and_membership(vip: Any, rid: str) -> None:
    plans = vip.ListPlans(vip_service_pb2.ListPlansRequest(), metadata=BFF).plans
    assert [p.product_id for p in plans] == ["vip-month", "vip-quarter", "vip-year"]
    assert all(p.duration_days > 0 and not p.HasField("stock") for p in plans)
    membership = vip.GetMembership(vip_service_pb2.GetMembershipRequest(user_id=f"u-{rid}"), metadata=BFF)
    assert not membership.membership.active


def test_health_and_reflection_need_no_token(channel: grpc.Channel) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "orderpay.v1.OrderService", "orderpay.v1.PayService", "orderpay.v1.VipService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"orderpay.v1.OrderService", "orderpay.v1.PayService", "orderpay.v1.VipService"} <= names


def test_one_canonical_log_line_per_call_with_the_ids(orders: Any, rid: str) -> None:
    capture = LogCapture()
    saved = structlog.get_config()
    structlog.configure(processors=[merge_call_fields, capture])
    try:
        with CALLS.captured() as calls:
            created = create(orders, f"u-{rid}", "k").order
            missing_order = pb.GetOrderRequest(order_id="ord_missing")
            refused(orders.GetOrder, missing_order, metadata=(*BFF, ("x-request-id", rid)))
    finally:
        structlog.configure(**saved)
    lines = [entry for entry in calls if entry["event"] == "rpc"]
    assert len(lines) == 2
    ok, missing = lines
    assert (ok["code"], ok["user_id"], ok["order_id"]) == ("OK", f"u-{rid}", created.order_id)
    assert ok["rpc"] == "/orderpay.v1.OrderService/CreateOrder"
    assert ok["duration_ms"] >= 0
    assert (missing["code"], missing["request_id"], missing["order_id"]) == ("NOT_FOUND", rid, "ord_missing")
    assert not any("test-bff-token" in str(entry) for entry in [*capture.entries, *calls])


def test_an_unauthenticated_caller_cannot_grow_the_log(orders: Any, rid: str) -> None:
    """Ids from the request reach the log only after authentication, and never longer than 64."""
    capture = LogCapture()
    saved = structlog.get_config()
    structlog.configure(processors=[merge_call_fields, capture])
    huge = f"u-{rid}-" + "x" * 1_000_000
    try:
        with CALLS.captured() as calls:
            listing = pb.ListOrdersRequest(user_id=huge, page_size=1)
            refused(orders.ListOrders, listing, metadata=(("x-request-id", "r" * 500),))  # no token
            refused(orders.ListOrders, listing, metadata=BFF)  # authenticated, but an invalid id
    finally:
        structlog.configure(**saved)
    lines = [entry for entry in calls if entry["event"] == "rpc"]
    assert [line["code"] for line in lines] == ["UNAUTHENTICATED", "INVALID_ARGUMENT"]
    anonymous, invalid = lines
    assert "user_id" not in anonymous
    assert len(anonymous["request_id"]) <= 128  # an oversized caller id is replaced, not echoed
    assert invalid["user_id"] == huge[:64]
    assert sum(len(str(entry)) for entry in [*capture.entries, *calls]) < 10_000
