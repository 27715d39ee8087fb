"""The failover drill: two orderpay processes on a pg_auto_failover formation (primary + synchronous
standby), a duplicate-order storm and a notification storm, and `kill -9` of the primary's postmaster.

What must hold afterwards: every CreateOrder a client saw succeed exists exactly once; every
notification answered 2xx is applied once and its order fulfilled once; no key has two orders; calls
in the gap got UNAVAILABLE (never INTERNAL); the system served again; the old primary rejoined as a
standby. Then the standby's whole node dies: the primary keeps serving (writes wait while the monitor
decides, then go on without a standby: pg_auto_failover's policy, reported). Figures are printed
(`-s`) for the closing note; time is reported, not asserted beyond a generous bound.

Run alone: `pytest -m drill -s`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import httpx
import psycopg2
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.loadtest.notifications import NotificationSigner, SignedNotification
from orderpay.v1 import order_service_pb2, order_service_pb2_grpc
from tests.support.pg_formation import Formation, available, running_formation
from tests.support.stack import BFF_TOKEN, Stack, running_stack
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.drill,
    pytest.mark.slow,
    pytest.mark.skipif(available() is not None, reason=f"no pg_auto_failover formation: {available()}"),
]

PRODUCT = "article-deep-dive"
COPIES = 3  # each key / each notification sent this many times at once, spread over both processes
NOTIFY_ORDERS = 30
SERVE_AGAIN_BOUND_S = 120
OK, UNAVAILABLE = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE
# A call may also outlive its deadline while a COMMIT waits for a standby that is gone; never INTERNAL.
ALLOWED_IN_GAP = {OK, UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
METADATA = (("authorization", f"Bearer {BFF_TOKEN}"),)
SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass
class Answer:
    key: str
    code: grpc.StatusCode
    order_id: str
    started: float
    ended: float


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
            return Answer(key, err.code(), "", started, time.monotonic())

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


@pytest.fixture(scope="module")
def formation() -> Iterator[Formation]:
    with running_formation() as running:
        yield running


@pytest.fixture(scope="module")
def stacks(formation: Formation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Stack]]:
    """Two orderpay processes on the formation's multi-host URL, sharing one sandbox."""
    first_dir, second_dir = tmp_path_factory.mktemp("drill-a"), tmp_path_factory.mktemp("drill-b")
    settings = {"db_health_interval_s": "0.5"}
    with running_stack(first_dir, formation.url, **settings) as first:
        second = Stack(workdir=second_dir, database_url=formation.url, keys=first.keys)
        second.sandbox_url = first.sandbox_url
        try:
            second.start_server(**settings)
            yield [first, second]
        finally:
            second.stop()


def _unpaid_orders(stacks: list[Stack], count: int) -> list[tuple[str, str, int]]:
    """(order_id, out_trade_no, total) for fresh unpaid orders, made through both processes."""
    made = []
    for i in range(count):
        with grpc.insecure_channel(stacks[i % 2].grpc_target) as channel:
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


def _query(formation: Formation, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(formation.url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def _readyz(stack: Stack) -> int:
    try:
        return httpx.get(stack.notify_url.replace("/wxpay/notify", "/readyz"), timeout=5).status_code
    except httpx.HTTPError:
        return 0


def _health(stack: Stack) -> int:
    with grpc.insecure_channel(stack.grpc_target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError:
            return -1
    return int(answer.status)


def _health_changes(stack: Stack) -> list[bool]:
    lines = (stack.workdir / "server.log").read_text().splitlines()
    return [bool(json.loads(line)["serving"]) for line in lines if '"health.database"' in line]


def test_primary_killed_during_storms(formation: Formation, stacks: list[Stack]) -> None:
    orders = _unpaid_orders(stacks, NOTIFY_ORDERS)
    signer = NotificationSigner.from_dir(stacks[0].keys)
    notes = [signer.transaction_success(out_trade_no, total) for _, out_trade_no, total in orders]
    creates = DuplicateStorm([s.grpc_target for s in stacks])
    notify = NotifyStorm([s.notify_url for s in stacks], notes)
    storms = [threading.Thread(target=creates.run), threading.Thread(target=notify.run)]
    for storm in storms:
        storm.start()
    try:
        wait_until(lambda: creates.ok_count() >= 30, 60, "the storms running", interval_s=0.05)
        old_primary = formation.primary()
        assert old_primary is not None
        killed_at = time.monotonic()
        formation.kill_postmaster(old_primary)
        wait_until(
            lambda: any(a.code != OK and a.ended > killed_at for a in creates.answers),
            30, "a failed call after the kill", interval_s=0.02,
        )  # fmt: skip
        wait_until(lambda: any(_readyz(s) == 503 for s in stacks), 30, "/readyz unavailable", interval_s=0.1)
        first_failure = min(a.ended for a in creates.answers if a.code != OK and a.ended > killed_at)

        def served_again() -> bool:
            return any(a.code == OK and a.started > first_failure for a in creates.answers)

        wait_until(served_again, SERVE_AGAIN_BOUND_S, "CreateOrder served again", interval_s=0.05)
        served_at = min(a.ended for a in creates.answers if a.code == OK and a.started > first_failure)
        resumed = len(creates.answers)
        wait_until(lambda: len(creates.answers) - resumed >= 15, 60, "the storm after the failover")
    finally:
        creates.stop()
        wait_until(notify.done, 90, "every notification answered 2xx (re-sent like WeChat)", interval_s=0.2)
        notify.stop()
        for storm in storms:
            storm.join(30)
    rejoin_s = formation.wait_healthy(180)
    rejoined_at = time.monotonic()
    new_primary = formation.primary()
    assert new_primary is not None
    assert new_primary is not old_primary
    assert formation.states()[old_primary.name][0] == "secondary"  # the old primary rejoined as a standby
    assert all(_readyz(s) == 200 for s in stacks)
    wait_until(lambda: all(_health(s) == SERVING for s in stacks), 30, "gRPC health SERVING again")
    # Each process's health watcher logs every change: NOT_SERVING in the gap, then SERVING again.
    assert all(_health_changes(s)[-2:] == [False, True] for s in stacks), [_health_changes(s) for s in stacks]

    gap = [a for a in creates.answers if a.ended > killed_at and a.started < served_at]
    gap_codes = Counter(a.code for a in gap)
    all_codes = Counter(a.code for a in creates.answers)
    acknowledged = {a.key: a.order_id for a in creates.answers if a.code == OK}
    # One key, one order: every OK answer for a key names the same order.
    by_key: dict[str, set[str]] = {}
    for a in creates.answers:
        if a.code == OK:
            by_key.setdefault(a.key, set()).add(a.order_id)
    split = {k: v for k, v in by_key.items() if len(v) > 1}
    stored = dict(
        _query(
            formation,
            "SELECT request_id, count(*) FROM orders WHERE request_id = ANY(%s) GROUP BY 1",
            (list(acknowledged),),
        )
    )
    doubled_keys = _query(
        formation, "SELECT user_id, request_id FROM orders GROUP BY 1, 2 HAVING count(*) > 1"
    )
    paid_ids = [order_id for order_id, _, _ in orders]

    def all_fulfilled() -> bool:
        rows = _query(formation, "SELECT count(*) FROM grants WHERE order_id = ANY(%s)", (paid_ids,))
        return rows[0][0] >= len(paid_ids)

    wait_until(all_fulfilled, 90, "every paid order fulfilled", interval_s=0.5)
    grants = dict(
        _query(
            formation,
            "SELECT order_id, count(*) FROM grants WHERE order_id = ANY(%s) GROUP BY 1",
            (paid_ids,),
        )
    )
    statuses = dict(
        _query(formation, "SELECT order_id, status FROM orders WHERE order_id = ANY(%s)", (paid_ids,))
    )
    applied = _query(
        formation,
        "SELECT count(*), count(DISTINCT notification_id) FROM notifications WHERE notification_id = ANY(%s)",
        ([_notification_id(n) for n in notes],),
    )[0]
    lag = _query(
        formation, "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication"
    )

    print(
        f"\nfailover drill: CreateOrder answers {dict(all_codes)}; acknowledged keys {len(acknowledged)};"
        f" in the gap {dict(gap_codes)}; lost {len(set(acknowledged) - set(stored))};"
        f" duplicates {sum(1 for c in stored.values() if c != 1) + len(doubled_keys) + len(split)};"
        f" served again {served_at - killed_at:.1f} s after the kill;"
        f" old primary back as standby {rejoined_at - killed_at:.1f} s after the kill"
        f" (waited {rejoin_s:.1f} s after the storms);"
        f" notifications {len(notes)} answered {dict(notify.statuses)}; replay lag now {lag[0][0]} s"
    )
    assert set(acknowledged) == set(stored), "an acknowledged order is missing"
    assert set(stored.values()) == {1}
    assert split == {}
    assert doubled_keys == []
    assert grpc.StatusCode.INTERNAL not in all_codes
    assert grpc.StatusCode.UNKNOWN not in all_codes
    assert set(gap_codes) <= ALLOWED_IN_GAP, gap_codes
    assert gap_codes[UNAVAILABLE] > 0
    assert served_at - killed_at < SERVE_AGAIN_BOUND_S
    assert applied == (len(notes), len(notes))  # each notification stored and applied once
    assert set(grants.values()) == {1}  # fulfilled exactly once
    assert len(grants) == len(paid_ids)
    assert set(statuses.values()) == {"PAID"}
    assert not any(400 <= s < 500 for s in notify.statuses)  # never "bad request" for a valid one


def _notification_id(note: SignedNotification) -> str:
    import json

    return str(json.loads(note.body)["id"])


def _sync_standby_names(formation: Formation) -> str:
    return str(_query(formation, "SHOW synchronous_standby_names")[0][0])


def test_standby_lost_during_the_storm(formation: Formation, stacks: list[Stack]) -> None:
    """The standby's whole node dies (keeper and postmaster). No failover: the same primary serves.
    With a synchronous standby configured, COMMITs wait until the monitor notices the loss and turns
    synchronous replication off (pg_auto_failover's wait_primary); the wait is measured, not asserted."""
    formation.wait_healthy(180)
    primary, standby = formation.primary(), formation.standby()
    assert primary is not None
    sync_before = _sync_standby_names(formation)
    creates = DuplicateStorm([s.grpc_target for s in stacks])
    storm = threading.Thread(target=creates.run)
    storm.start()
    try:
        wait_until(lambda: creates.ok_count() >= 15, 60, "the storm running", interval_s=0.05)
        killed_at = time.monotonic()
        formation.kill_node(standby)
        wait_until(
            lambda: sum(a.code == OK and a.started > killed_at + 1 for a in creates.answers) >= 15,
            120, "writes going on without the standby", interval_s=0.05,
        )  # fmt: skip
        sync_without = _sync_standby_names(formation)
    finally:
        creates.stop()
        storm.join(30)
    after = [a for a in creates.answers if a.started > killed_at]
    longest = max(a.ended - a.started for a in after)
    resumed = min(a.ended for a in after if a.code == OK and a.started > killed_at + 1) - killed_at
    formation.restart_node(standby)
    rejoin_s = formation.wait_healthy(180)
    acknowledged = {a.key for a in creates.answers if a.code == OK}
    stored = dict(
        _query(
            formation,
            "SELECT request_id, count(*) FROM orders WHERE request_id = ANY(%s) GROUP BY 1",
            (list(acknowledged),),
        )
    )
    codes = Counter(a.code for a in creates.answers)
    print(
        f"\nstandby lost: CreateOrder answers {dict(codes)}; after the kill the longest call took"
        f" {longest:.1f} s; writes flowing again {resumed:.1f} s after the kill;"
        f" synchronous_standby_names {sync_before!r} -> {sync_without!r}; standby back in {rejoin_s:.1f} s"
    )
    assert formation.primary() is primary  # no failover: the primary kept its role
    assert set(acknowledged) == set(stored)
    assert set(stored.values()) <= {1}
    assert grpc.StatusCode.INTERNAL not in codes
    assert set(codes) <= ALLOWED_IN_GAP
    assert sync_without == ""  # the monitor turned synchronous replication off: writes go on
