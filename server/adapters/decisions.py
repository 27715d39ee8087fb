"""Announcing that an order's fulfilment was decided, after the decision committed.

In-process, to whoever subscribed (the server's long-poll waiters, server/serving/waiters.py). Across
processes on PostgreSQL, as `NOTIFY orderpay_fulfilment, '<order_id>'`, which every process LISTENs to
(server/serving/signals.py). An announcement is a hint: a woken waiter re-reads the order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import peewee as pw

CHANNEL: Final = "orderpay_fulfilment"


class FulfilmentDecisions:
    def __init__(self, db: pw.Database) -> None:
        self._db = db
        self._postgres = isinstance(db, pw.PostgresqlDatabase)
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """`listener(order_id)` is called from whichever thread published: it must be thread-safe."""
        self._listeners.append(listener)

    def publish(self, order_id: str) -> None:
        for listener in tuple(self._listeners):
            listener(order_id)
        if self._postgres:
            db: Any = self._db  # peewee is untyped
            with db.connection_context():
                db.execute_sql("SELECT pg_notify(%s, %s)", (CHANNEL, order_id))
