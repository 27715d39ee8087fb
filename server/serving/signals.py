"""Fulfilment signals from other processes: wake the long-polls of an order when its fulfilment commits.

In-process the signal is a direct `Waiters.wake` (the FulfilmentDecided reaction publishes through
server.adapters.decisions). Across processes (PostgreSQL) it is `NOTIFY orderpay_fulfilment,
'<order_id>'`, and every process LISTENs on one dedicated connection whose socket the event loop watches
(`loop.add_reader`): no thread, no per-waiter polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import peewee as pw
import psycopg2
import psycopg2.extensions
import structlog

from server.adapters.decisions import CHANNEL
from server.adapters.event_log import FEED_CHANNEL
from server.adapters.postgres import connect_params
from server.serving.waiters import Waiters

log = structlog.get_logger("orderpay.signals")
_RECONNECT_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)


def listener_args(db: pw.PostgresqlDatabase, listen_url: str = "") -> dict[str, Any]:
    """Connection parameters for the LISTEN session: `listen_url` when given (a direct URL beside a
    transaction-pooling pgbouncer), else the pool's own."""
    if listen_url:
        return connect_params(listen_url)
    return {"database": db.database, **db.connect_params}


class PostgresListener:
    """LISTEN on a dedicated autocommit connection registered with the loop; reconnects on failure
    (after a failover: to the new primary) and then wakes every waiter, which re-read their order (a
    notification may have been missed while it was down)."""

    def __init__(
        self, connect_args: dict[str, Any], waiters: Waiters, feed: Callable[[int], None] | None = None
    ) -> None:
        # What libpq needs to reach the primary: the pool's own parameters (multi-host and
        # target_session_attrs=read-write included, so a reconnect after a failover finds the new
        # primary: a standby refuses LISTEN), or a direct URL's when the pool goes through pgbouncer.
        self._connect_args = connect_args
        self._waiters = waiters
        self._feed = feed  # the event feed's Watch streams (FEED_CHANNEL; payload: the new head)
        self._loop = asyncio.get_running_loop()
        self._conn: Any = None
        self._fd: int | None = None  # kept: a broken connection cannot tell its fd any more
        self._closed = False
        self._reconnecting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._attach(await self._loop.run_in_executor(None, self._connect))

    def close(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        self._detach()

    def _connect(self) -> Any:
        conn = psycopg2.connect(**self._connect_args)
        conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {FEED_CHANNEL}")
            cur.execute(f"LISTEN {CHANNEL}")
        return conn

    async def _attach(self, conn: Any) -> None:
        self._conn, self._fd = conn, conn.fileno()
        self._loop.add_reader(self._fd, self._readable)
        self._readable()  # anything that arrived while LISTEN was being set up

    def _detach(self) -> None:
        conn, fd, self._conn, self._fd = self._conn, self._fd, None, None
        if fd is not None:
            self._loop.remove_reader(fd)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.poll()
        except psycopg2.Error:
            log.warning("signals.listener_lost", exc_info=True)
            self._detach()
            if not self._closed:
                self._reconnecting = self._loop.create_task(self._reconnect())
            return
        while conn.notifies:
            notify = conn.notifies.pop(0)
            if notify.channel == FEED_CHANNEL:
                if self._feed is not None:
                    self._feed(0)
            else:
                self._waiters.wake(notify.payload)

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closed:
            await asyncio.sleep(_RECONNECT_DELAYS_S[min(attempt, len(_RECONNECT_DELAYS_S) - 1)])
            attempt += 1
            try:
                conn = await self._loop.run_in_executor(None, self._connect)
            except psycopg2.Error:
                continue
            await self._attach(conn)
            log.info("signals.listener_back", attempts=attempt)
            self._waiters.wake_all()  # re-read: a commit may have landed while we were deaf
            if self._feed is not None:
                self._feed(0)
            return
