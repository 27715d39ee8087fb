"""The PostgreSQL connection layer when its server goes away, on a throwaway cluster of the test's own:
the pool learns it from the first failed statement (UNAVAILABLE) and drops the idle rest; a read-only
server is UNAVAILABLE, never INTERNAL; a COMMIT whose synchronous-replication wait is cancelled is not
an acknowledgement; the LISTEN connection comes back and its waiters re-read.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import peewee as pw
import psycopg2
import pytest

from server.adapters.db import make_database, ready
from server.adapters.decisions import CHANNEL
from server.adapters.faults import TRANSIENT_DATABASE_ERRORS
from server.adapters.postgres import PrimaryLostError, ReplicationUnconfirmedError
from server.rpc.status import code_for, domain_error_of
from server.serving.signals import PostgresListener, listener_args
from server.serving.waiters import Waiters
from tests.support.pg_cluster import Cluster, available, throwaway_cluster
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(available() is not None, reason=f"no throwaway PostgreSQL: {available()}"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as running:
        admin(running, "CREATE TABLE IF NOT EXISTS t (id serial PRIMARY KEY, note text)")
        yield running


def admin(cluster: Cluster, sql: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(cluster.admin_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def one_statement(db: pw.Database, sql: str = "SELECT 1") -> None:
    with db.connection_context():
        db.execute_sql(sql)


def fill_the_pool(db: pw.Database, connections: int) -> None:
    """`connections` idle connections in the pool: as many threads each hold one at once."""
    together = threading.Barrier(connections)

    def hold() -> None:
        with db.connection_context():
            db.execute_sql("SELECT 1")
            together.wait(10)

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(lambda _: hold(), range(connections)))


def test_a_restarted_server_costs_one_failed_call_not_one_per_pooled_connection(cluster: Cluster) -> None:
    db = make_database(cluster.admin_url, pool_size=8)
    fill_the_pool(db, 4)
    cluster.kill()
    cluster.start()
    with pytest.raises(pw.OperationalError) as failed:
        one_statement(db)  # a pooled connection to the old server process: found out by its statement
    assert isinstance(failed.value, TRANSIENT_DATABASE_ERRORS)
    assert code_for(domain_error_of(failed.value)).name == "UNAVAILABLE"  # type: ignore[arg-type]
    one_statement(db)  # the three other idle connections were dropped with it: this one is new
    one_statement(db)
    db.close_all()


def test_a_read_only_server_is_unavailable_and_not_ready(cluster: Cluster) -> None:
    db = make_database(cluster.admin_url, pool_size=4)
    assert ready(db)
    admin(cluster, "ALTER SYSTEM SET default_transaction_read_only = on")
    admin(cluster, "SELECT pg_reload_conf()")
    try:
        wait_until(lambda: not ready(db), 10, "readiness to see a read-only server")
        with pytest.raises(PrimaryLostError) as failed, db.connection_context(), db.atomic():
            db.execute_sql("INSERT INTO t (note) VALUES ('read-only')")
        assert code_for(domain_error_of(failed.value)).name == "UNAVAILABLE"  # type: ignore[arg-type]
    finally:
        admin(cluster, "ALTER SYSTEM RESET default_transaction_read_only")
        admin(cluster, "SELECT pg_reload_conf()")
    wait_until(lambda: ready(db), 10, "readiness back")
    with db.connection_context(), db.atomic():
        db.execute_sql("INSERT INTO t (note) VALUES ('writable again')")
    db.close_all()


def test_a_cancelled_synchronous_replication_wait_is_not_an_acknowledgement(cluster: Cluster) -> None:
    """PostgreSQL answers such a COMMIT with success and a WARNING; orderpay reports UNAVAILABLE."""
    db = make_database(cluster.admin_url, pool_size=4)
    admin(cluster, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'")  # every COMMIT waits
    admin(cluster, "SELECT pg_reload_conf()")
    outcome: list[BaseException | None] = []

    def write(note: str) -> None:
        try:
            with db.connection_context(), db.atomic():
                db.execute_sql("INSERT INTO t (note) VALUES (%s)", (note,))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    def cancel_the_wait() -> None:
        wait_until(
            lambda: (
                admin(cluster, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")[0][0]
                == 1
            ),
            10,
            "the COMMIT waiting for a synchronous standby",
        )
        admin(cluster, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")

    try:
        writer = threading.Thread(target=write, args=("unconfirmed",))
        writer.start()
        cancel_the_wait()
        writer.join(10)
        # The hazard is real: the row is committed on this server, though no standby has it.
        assert admin(cluster, "SELECT count(*) FROM t WHERE note = 'unconfirmed'") == [(1,)]
        # A bare driver reports that COMMIT as a success; orderpay does not.
        raw = psycopg2.connect(cluster.admin_url)
        raw_thread = threading.Thread(target=lambda: _raw_commit(raw))
        raw_thread.start()
        cancel_the_wait()
        raw_thread.join(10)
        assert any("synchronous replication" in notice for notice in raw.notices)
        raw.close()
    finally:
        admin(cluster, "ALTER SYSTEM RESET synchronous_standby_names")
        admin(cluster, "SELECT pg_reload_conf()")
    assert len(outcome) == 1
    assert isinstance(outcome[0], ReplicationUnconfirmedError)
    assert code_for(domain_error_of(outcome[0])).name == "UNAVAILABLE"  # type: ignore[arg-type]
    db.close_all()


def test_synchronous_commit_local_writes_on_without_a_standby(cluster: Cluster) -> None:
    """ORDERPAY_DB_SYNCHRONOUS_COMMIT=local: availability first, a COMMIT never waits for a standby."""
    db = make_database(cluster.admin_url, pool_size=2, synchronous_commit="local")
    admin(cluster, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
    admin(cluster, "SELECT pg_reload_conf()")
    try:
        with db.connection_context(), db.atomic():
            db.execute_sql("INSERT INTO t (note) VALUES ('local')")  # would wait forever with "on"
        with db.connection_context():
            assert db.execute_sql("SHOW synchronous_commit").fetchone() == ("local",)
    finally:
        admin(cluster, "ALTER SYSTEM RESET synchronous_standby_names")
        admin(cluster, "SELECT pg_reload_conf()")
    assert admin(cluster, "SELECT count(*) FROM t WHERE note = 'local'") == [(1,)]
    db.close_all()


def _raw_commit(conn: psycopg2.extensions.connection) -> None:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO t (note) VALUES ('raw')")
    conn.commit()  # returns normally: the false acknowledgement


async def test_the_listener_comes_back_after_a_restart_and_its_waiters_re_read(cluster: Cluster) -> None:
    db = make_database(cluster.admin_url, pool_size=2)
    waiters = Waiters(asyncio.get_running_loop())
    listener = PostgresListener(listener_args(db), waiters)  # type: ignore[arg-type]  # PostgreSQL here
    await listener.start()
    reads = 0
    paid = False

    async def read() -> bool:
        nonlocal reads
        reads += 1
        return paid

    waiting = asyncio.create_task(waiters.until("order-1", read, bool, timeout_s=60))
    await _eventually(lambda: waiters.waiting == 1)
    await asyncio.to_thread(cluster.kill)
    await asyncio.to_thread(cluster.start)
    await _eventually(lambda: reads >= 2)  # woken on reconnect: a commit may have landed meanwhile
    await _eventually(lambda: waiters.waiting == 1)
    paid = True
    await asyncio.to_thread(admin, cluster, f"NOTIFY {CHANNEL}, 'order-1'")
    assert await asyncio.wait_for(waiting, 10) is True  # the new server's notification arrived
    listener.close()
    db.close_all()


async def _eventually(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
