"""The failover drill's load and probes (tests/e2e/test_failover_drill.py): a duplicate-order storm,
a notification storm re-sent like WeChat Pay, and a watch on COMMITs waiting for a synchronous standby."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import httpx
import psycopg2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.loadtest.notifications import SignedNotification
from orderpay.v1 import order_service_pb2, order_service_pb2_grpc
from tests.support.stack import BFF_TOKEN, Stack
from tests.support.waiting import wait_until

PRODUCT = "article-deep-dive"
COPIES = 3  # each key / each notification sent this many times at once, spread over both processes
OK = grpc.StatusCode.OK
METADATA = (("authorization", f"Bearer {BFF_TOKEN}"),)


@dataclass
class Answer:
    key: str
    code: grpc.StatusCode
    order_id: str
    started: float
    ended: float
    detail: str = ""  # the status message of a failed call


@dataclass
class DuplicateStorm:
    """CreateOrder with fresh keys, each key COPIES times at once over both processes; raw stubs, no
    client retries: every answer's code is recorded."""

    targets: list[str]
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        channels = [grpc.insecure_channel(t) for t in self.targets]
        stubs = [order_service_pb2_grpc.OrderServiceStub(c) for c in channels]
        with ThreadPoolExecutor(COPIES) as pool:
            while not self._stop.is_set():
                key = uuid.uuid4().hex
                calls = [pool.submit(self._create, stubs[i % len(stubs)], key) for i in range(COPIES)]
                self.answers.extend(call.result() for call in calls)
        for channel in channels:
            channel.close()

    def _create(self, stub: order_service_pb2_grpc.OrderServiceStub, key: str) -> Answer:
        request = order_service_pb2.CreateOrderRequest(
            request_id=key, user_id=f"drill-{key[:12]}", product_id=PRODUCT, quantity=1
        )
        started = time.monotonic()
        try:
            reply = stub.CreateOrder(request, metadata=METADATA, timeout=5)
            return Answer(key, OK, reply.order.order_id, started, time.monotonic())
        except grpc.RpcError as err:
            return Answer(key, err.code(), "", started, time.monotonic(), str(err.details() or "")[:120])

    def stop(self) -> None:
        self._stop.set()

    def ok_count(self) -> int:
        return sum(a.code == OK for a in self.answers)


@dataclass
class NotifyStorm:
    """Signed TRANSACTION.SUCCESS notifications, COPIES at once to the two sidecars, a few per tick;
    one not answered 2xx is sent again later, as WeChat Pay does."""

    urls: list[str]
    notes: list[SignedNotification]
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: set[str] = field(default_factory=set)  # out_trade_no answered 2xx at least once
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=10) as client, ThreadPoolExecutor(COPIES) as pool:
            while not self._stop.is_set() and not self.done():
                for note in [n for n in self.notes if n.out_trade_no not in self.accepted][:3]:
                    posts = [
                        pool.submit(self._post, client, self.urls[i % len(self.urls)], note)
                        for i in range(COPIES)
                    ]
                    if any(200 <= p.result() < 300 for p in posts):
                        self.accepted.add(note.out_trade_no)
                self._stop.wait(0.1)

    def _post(self, client: httpx.Client, url: str, note: SignedNotification) -> int:
        try:
            status = client.post(url, content=note.body, headers=note.headers).status_code
        except httpx.HTTPError:
            status = 0
        self.statuses[status] += 1
        return status

    def done(self) -> bool:
        return len(self.accepted) == len(self.notes)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class SyncRepWatch:
    """Samples the primary's client sessions on the orderpay database: how many COMMITs wait for a
    synchronous standby (wait_event SyncRep). What "writes block without a standby" means, observed
    rather than inferred from call durations."""

    url: str  # one node, the primary (not the multi-host URL: it must stay on that server)
    most_waiting: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        conn = psycopg2.connect(self.url, connect_timeout=2)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not self._stop.is_set():
                    cur.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
                        " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    )
                    waiting = int(cur.fetchone()[0])
                    self.most_waiting = max(self.most_waiting, waiting)
                    self.samples += 1
                    self._stop.wait(0.02)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()


def unpaid_orders(targets: list[str], count: int) -> list[tuple[str, str, int]]:
    """(order_id, out_trade_no, total) for fresh unpaid orders, made through every process in turn."""
    made = []
    for i in range(count):
        with grpc.insecure_channel(targets[i % len(targets)]) as channel:
            stub = order_service_pb2_grpc.OrderServiceStub(channel)
            key = uuid.uuid4().hex
            reply = stub.CreateOrder(
                order_service_pb2.CreateOrderRequest(
                    request_id=key, user_id=f"drill-payer-{key[:12]}", product_id=PRODUCT, quantity=1
                ),
                metadata=METADATA,
                timeout=10,
            )
            made.append((reply.order.order_id, reply.order.out_trade_no, reply.order.total_fee))
    return made


def query(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def notification_id(note: SignedNotification) -> str:
    return str(json.loads(note.body)["id"])


@dataclass(frozen=True)
class Applied:
    """What the notification storm left in the database, per paid order."""

    stored: tuple[int, int]  # notification rows, distinct notification ids
    paid_transitions: dict[str, int]  # order_id -> audit rows status -> PAID (applied once: 1)
    grants: dict[str, int]  # order_id -> grants rows (fulfilled once: 1)
    statuses: dict[str, str]


def applied(url: str, notes: list[SignedNotification], paid_ids: list[str], timeout_s: float = 90) -> Applied:
    def all_fulfilled() -> bool:
        rows = query(url, "SELECT count(*) FROM grants WHERE order_id = ANY(%s)", (paid_ids,))
        return int(rows[0][0]) >= len(paid_ids)  # type: ignore[call-overload]

    wait_until(all_fulfilled, timeout_s, "every paid order fulfilled", interval_s=0.5)
    per_order = "SELECT order_id, count(*) FROM {} WHERE order_id = ANY(%s){} GROUP BY 1"
    paid = " AND field = 'status' AND to_value = 'PAID'"
    stored = query(
        url,
        "SELECT count(*), count(DISTINCT notification_id) FROM notifications WHERE notification_id = ANY(%s)",
        ([notification_id(n) for n in notes],),
    )[0]
    return Applied(
        stored=(int(stored[0]), int(stored[1])),  # type: ignore[call-overload]
        paid_transitions=dict(query(url, per_order.format("order_events", paid), (paid_ids,))),  # type: ignore[arg-type]
        grants=dict(query(url, per_order.format("grants", ""), (paid_ids,))),  # type: ignore[arg-type]
        statuses=dict(
            query(url, "SELECT order_id, status FROM orders WHERE order_id = ANY(%s)", (paid_ids,))
        ),  # type: ignore[arg-type]
    )


def readyz(stack: Stack) -> int:
    try:
        return httpx.get(stack.notify_url.replace("/wxpay/notify", "/readyz"), timeout=5).status_code
    except httpx.HTTPError:
        return 0


def health(stack: Stack) -> int:
    with grpc.insecure_channel(stack.grpc_target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError:
            return -1
    return int(answer.status)


def health_changes(stack: Stack) -> list[bool]:
    lines = (stack.workdir / "server.log").read_text().splitlines()
    return [bool(json.loads(line)["serving"]) for line in lines if '"health.database"' in line]
