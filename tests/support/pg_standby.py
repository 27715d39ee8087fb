"""A throwaway primary and a hot standby streaming from it (pg_basebackup -R), each a cluster of the test's
own on a free loopback port: what ORDERPAY_DATABASE_READ_URL points at, without a failover manager.

`pause_replay` holds the standby's replay, so a row committed on the primary is absent on the standby
until `resume_replay`: the honest way to tell which server answered a read."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2

from clients.bench.procs import free_port
from tests.support.pg_cluster import BIN, Cluster, _as_postgres, throwaway_cluster
from tests.support.waiting import wait_until


def sql(url: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(url, connect_timeout=2)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def wait_replayed(primary: Cluster, standby: Cluster) -> None:
    """Until the standby has replayed everything the primary wrote so far."""
    lsn = sql(primary.admin_url, "SELECT pg_current_wal_lsn()::text")[0][0]
    wait_until(
        lambda: sql(standby.admin_url, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0],
        30, "the standby caught up", interval_s=0.02,
    )  # fmt: skip


def pause_replay(standby: Cluster) -> None:
    sql(standby.admin_url, "SELECT pg_wal_replay_pause()")
    wait_until(
        lambda: sql(standby.admin_url, "SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused",
        10, "the standby's replay paused", interval_s=0.02,
    )  # fmt: skip


def resume_replay(standby: Cluster) -> None:
    sql(standby.admin_url, "SELECT pg_wal_replay_resume()")


@contextmanager
def primary_and_standby() -> Iterator[tuple[Cluster, Cluster]]:
    with throwaway_cluster() as primary:
        root = Path(tempfile.mkdtemp(prefix="orderpay-standby-"))
        root.chmod(0o755)
        datadir = root / "data"
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        subprocess.run(
            _as_postgres([str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                          "-U", "postgres", "-D", str(datadir), "-R", "-X", "stream",
                          "-c", "fast", "--no-sync"]),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        standby = Cluster(datadir, free_port())
        try:
            standby.start()
            yield primary, standby
        finally:
            standby.stop()
            shutil.rmtree(root, ignore_errors=True)
