"""ORDERPAY_DATABASE_READ_URL on a real primary and a real hot standby streaming from it.

The proof of where a read ran: the standby's replay is paused, then an order is written. The order is
on the primary only, so a read that shows it ran on the primary and one that does not ran on the
standby. The operator's reads (AdminService lists, `ops orders`, console pages, the overview) must
not show it; CreateOrder, its idempotent replay and GetOrder must. With the standby down, the same
reads answer from the primary, logged once and counted.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import httpx
import pytest
from structlog.testing import capture_logs

from clients.cli import main
from orderpay.v1 import admin_service_pb2 as admin_pb
from orderpay.v1 import admin_service_pb2_grpc, order_service_pb2, order_service_pb2_grpc
from server.adapters.db import make_database
from server.adapters.read_routing import ReadRoute
from server.adapters.tables import OrderRow
from server.metrics import REGISTRY
from tests.support.console_stack import ADMIN_TOKEN, BFF_TOKEN, LiveStack, live_stack, sign_in
from tests.support.pg_cluster import Cluster, available
from tests.support.pg_standby import pause_replay, primary_and_standby, resume_replay, sql, wait_replayed
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(available() is not None, reason=f"no throwaway PostgreSQL: {available()}"),
]
PRODUCT = "article-deep-dive"


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Cluster, Cluster]]:
    with primary_and_standby() as running:
        sql(running[0].admin_url, "CREATE DATABASE orderpay")
        yield running


@pytest.fixture(scope="module")
def live(pair: tuple[Cluster, Cluster], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    primary, standby = pair
    with live_stack(
        tmp_path_factory.mktemp("reads"),
        database_url=primary.url("orderpay"),
        database_read_url=standby.url("orderpay"),
    ) as running:
        wait_replayed(primary, standby)  # the migrated schema is on the standby too
        yield running


@pytest.fixture
def replay_paused(pair: tuple[Cluster, Cluster]) -> Iterator[Cluster]:
    primary, standby = pair
    wait_replayed(primary, standby)
    pause_replay(standby)
    try:
        yield standby
    finally:
        resume_replay(standby)


def create(live: LiveStack, key: str) -> str:
    with grpc.insecure_channel(live.grpc_target) as channel:
        reply = order_service_pb2_grpc.OrderServiceStub(channel).CreateOrder(
            order_service_pb2.CreateOrderRequest(
                request_id=key, user_id=f"reader-{key[:10]}", product_id=PRODUCT, quantity=1
            ),
            metadata=(("authorization", f"Bearer {BFF_TOKEN}"),),
            timeout=10,
        )
    return str(reply.order.order_id)


def get_order(live: LiveStack, order_id: str) -> str:
    with grpc.insecure_channel(live.grpc_target) as channel:
        reply = order_service_pb2_grpc.OrderServiceStub(channel).GetOrder(
            order_service_pb2.GetOrderRequest(order_id=order_id),
            metadata=(("authorization", f"Bearer {BFF_TOKEN}"),),
            timeout=10,
        )
    return str(reply.order.order_id)


def admin_list(live: LiveStack, order_id: str) -> list[str]:
    with grpc.insecure_channel(live.grpc_target) as channel:
        reply = admin_service_pb2_grpc.AdminServiceStub(channel).ListAllOrders(
            admin_pb.ListAllOrdersRequest(query=order_id, page_size=10),
            metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),),
            timeout=10,
        )
    return [o.order_id for o in reply.orders]


@contextmanager
def console(live: LiveStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.console_url, timeout=10) as client:
        assert sign_in(client, ADMIN_TOKEN).status_code == 302
        yield client


def reads_counted(route: str) -> float:
    value = REGISTRY.get_sample_value("orderpay_db_operator_reads_total", {"route": route})
    return value or 0.0


def test_operator_reads_come_from_the_standby_and_getorder_and_writes_from_the_primary(
    live: LiveStack, pair: tuple[Cluster, Cluster], replay_paused: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    primary, standby = pair
    key = uuid.uuid4().hex
    order_id = create(live, key)  # a write: the standby is read-only, so this ran on the primary

    assert create(live, key) == order_id  # the idempotency lookup that decides it: the primary
    assert get_order(live, order_id) == order_id  # GetOrder answers the BFF after its own write
    assert admin_list(live, order_id) == []  # ListAllOrders read the standby, which has not replayed it
    capsys.readouterr()
    assert main(["ops", "orders", "--query", order_id, "--json", "--target", live.grpc_target,
                 "--token", ADMIN_TOKEN]) == 0  # fmt: skip
    assert order_id not in capsys.readouterr().out
    with console(live) as client:
        assert f'href="/orders/{order_id}"' not in client.get("/orders", params={"q": order_id}).text
        overview = client.get("/overview").text
    assert "Read standby" in overview
    assert "behind the primary" in overview  # replay is paused: the lag is shown, not hidden

    # The read pool's sessions are on the standby, none on the primary.
    names = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orderpay-reads'"
    assert sql(standby.admin_url, names)[0][0] > 0
    assert sql(primary.admin_url, names)[0][0] == 0

    resume_replay(standby)
    wait_until(lambda: admin_list(live, order_id) == [order_id], 30, "the standby replayed the order")
    with console(live) as client:
        assert f'href="/orders/{order_id}"' in client.get("/orders", params={"q": order_id}).text
        assert "replayed all the WAL it received" in client.get("/overview").text


def test_a_routed_read_leaves_other_threads_writing_to_the_primary(
    live: LiveStack, pair: tuple[Cluster, Cluster]
) -> None:
    """Why not peewee's bind_ctx: it would rebind the models for every thread during the read."""
    inside, done = threading.Event(), threading.Event()

    def long_read() -> int:
        count = OrderRow.select().count()
        inside.set()
        done.wait(10)
        return int(count)

    reader = threading.Thread(target=lambda: live.stack.app.admin.reads.run(long_read))
    reader.start()
    try:
        assert inside.wait(10)
        order_id = create(live, uuid.uuid4().hex)  # on another thread, while the read holds the standby
        assert get_order(live, order_id) == order_id
    finally:
        done.set()
        reader.join(10)


def test_reads_fall_back_to_the_primary_while_the_standby_is_down_logged_once(
    live: LiveStack, pair: tuple[Cluster, Cluster]
) -> None:
    primary, standby = pair
    order_id = create(live, uuid.uuid4().hex)
    fallbacks = reads_counted("primary_fallback")
    standby.kill()
    try:
        with capture_logs() as logs:
            assert admin_list(live, order_id) == [order_id]  # from the primary: the console keeps working
            assert admin_list(live, order_id) == [order_id]
            with console(live) as client:
                assert f'href="/orders/{order_id}"' in client.get("/orders", params={"q": order_id}).text
                assert "The standby does not answer" in client.get("/overview").text
        downs = [e for e in logs if e["event"] == "db.read_standby_unavailable"]
        assert len(downs) == 1, logs  # once, not once per read
        assert reads_counted("primary_fallback") - fallbacks >= 3
        assert REGISTRY.get_sample_value("orderpay_db_read_standby_up") == 0
    finally:
        standby.start()
    wait_replayed(primary, standby)


def test_a_route_goes_back_to_the_standby_once_it_answers_again(pair: tuple[Cluster, Cluster]) -> None:
    primary, standby = pair
    primary_db = make_database(primary.url("orderpay"), pool_size=2)
    standby_db = make_database(standby.url("orderpay"), pool_size=2)
    route = ReadRoute(primary_db, standby_db, retry_after_s=0)

    def in_recovery() -> bool:
        return bool(OrderRow._meta.database.execute_sql("SELECT pg_is_in_recovery()").fetchone()[0])

    try:
        assert route.run(in_recovery) is True  # the models' proxy points at the standby
        standby.kill()
        with capture_logs() as logs:
            assert route.run(in_recovery) is False  # the primary answered
            standby.start()
            wait_until(lambda: route.run(in_recovery), 30, "reads back on the standby", interval_s=0.1)
        routing = [e["event"] for e in logs if e["event"].startswith("db.read_standby")]
        assert routing == ["db.read_standby_unavailable", "db.read_standby_back"]  # once each way
        lag = route.lag()
        assert lag is not None
        assert lag.in_recovery
    finally:
        route.close()
        primary_db.close_all()  # type: ignore[attr-defined]
