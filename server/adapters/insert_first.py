"""CreateOrder's write, composed once per SQL dialect: insert the order first, and its audit row in the
same transaction, in as few statements as the dialect allows.

- PostgreSQL: one statement, so one round trip: a CTE inserts the order (`ON CONFLICT DO NOTHING
  RETURNING`) and the audit row selects from it, so a conflict inserts neither. Given the order's
  feed entry, the same statement appends it: it bumps the feed's head row only when the order went
  in, inserts the entry under that position (`orderpay_feed_event` puts the position into the stored
  message, migration 0012) and queues the NOTIFY. The caller passes the entry only when this is the
  transaction's last statement, so the head row's lock is held from here to the commit and nothing
  is locked after it (the feed's rule, server/adapters/event_log.py).
- SQLite: `INSERT … ON CONFLICT DO NOTHING RETURNING id`, then the audit row when one came back, then
  the feed entry through the event log's append.

`ON CONFLICT DO NOTHING` with no conflict target covers every unique index (order id, out_trade_no,
the idempotency key, the one-unpaid-order partial index): a duplicate inserts nothing and raises
nothing, so the transaction needs no savepoint; the caller reads the winner only then.
Peewee still composes the column list and placeholders (its quoting and dialect); values are bound as
one list already converted (naive UTC datetimes, enum values), not through 30 field converters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee as pw

from server.adapters.event_log import PeeweeEventLog
from server.adapters.feed_append import FEED_CHANNEL, statements
from server.adapters.feed_payload import encode_entry
from server.adapters.prepared import Prepared
from server.adapters.tables import OrderEventRow, OrderRow
from server.adapters.times import to_db_time
from server.domain.order import Order
from server.service.feed_ports import FeedEntry
from server.service.shapes import AuditEvent

_ORDER_COLUMNS = tuple(f.name for f in OrderRow._meta.sorted_fields if not isinstance(f, pw.AutoField))
_AUDIT_COLUMNS = ("order_id", "field", "from_value", "to_value", "cause", "actor", "request_id", "created_at")
_ENUMS = frozenset({"kind", "status", "fulfilment"})


class InsertFirst:
    def __init__(self, events: PeeweeEventLog) -> None:
        self._events = events
        self._sql: dict[type[pw.Database], _Statements] = {}

    def execute(self, order: Order, audit: AuditEvent, now: datetime, entry: FeedEntry | None = None) -> bool:
        """True when this order was inserted (with its audit row, and `entry` on the feed); False when
        a unique index already held a row that conflicts (nothing was written)."""
        db: Any = OrderRow._meta.database.obj  # the database the proxy is bound to
        sql = self._statements(db)
        order_values = _order_values(order)
        audit_values = _audit_values(audit, now)
        if sql.one_trip:  # PostgreSQL: one round trip
            if entry is None:
                return db.execute_sql(sql.order, [*order_values, *audit_values[1:]]).fetchone() is not None
            feed = (entry.type.value, entry.account, entry.order_id, to_db_time(entry.occurred_at))
            params = [*order_values, *audit_values[1:], 1, 1, *feed, encode_entry(entry, 0), FEED_CHANNEL]
            return sql.order_and_feed.execute(db, params).fetchone() is not None  # type: ignore[union-attr]
        if db.execute_sql(sql.order, order_values).fetchone() is None:
            return False
        db.execute_sql(sql.audit, audit_values)
        if entry is not None:
            self._events.append([entry])
        return True

    def _statements(self, db: pw.Database) -> _Statements:
        found = self._sql.get(type(db))
        if found is None:
            found = self._sql[type(db)] = _compose(db)
        return found

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"InsertFirst({list(self._sql)})"


@dataclass(frozen=True)
class _Statements:
    order: str  # PostgreSQL: the order and its audit row; SQLite: the order
    audit: str = ""  # SQLite: the audit row
    order_and_feed: Prepared | None = None  # PostgreSQL: the order, its audit row and its feed entry

    @property
    def one_trip(self) -> bool:
        return self.order_and_feed is not None


def _compose(db: pw.Database) -> _Statements:
    ctx = db.get_sql_context
    order_insert = OrderRow.insert({getattr(OrderRow, c): None for c in _ORDER_COLUMNS}).returning()
    sql = str(ctx().sql(order_insert).query()[0])
    sql = sql.split(" RETURNING ", 1)[0] + ' ON CONFLICT DO NOTHING RETURNING "order_id"'
    audit_insert = OrderEventRow.insert({getattr(OrderEventRow, c): None for c in _AUDIT_COLUMNS})
    audit_sql = str(ctx().sql(audit_insert).query()[0]).split(" RETURNING ", 1)[0]
    if not isinstance(db, pw.PostgresqlDatabase):
        return _Statements(sql, audit=audit_sql)
    p = db.param
    columns = audit_sql[audit_sql.index("(") : audit_sql.index(")") + 1]
    table = audit_sql.split(" ", 3)[2]
    placeholders = ", ".join([p] * (len(_AUDIT_COLUMNS) - 1))
    # Identifiers and placeholders from Peewee, no values (S608).
    audit_from_created = f"INSERT INTO {table} {columns} SELECT created.order_id, {placeholders} FROM created"  # noqa: S608
    combined = f'WITH created AS ({sql}) {audit_from_created} RETURNING "order_id"'
    feed = statements(db)
    head = feed.bump.replace(" RETURNING ", " AND EXISTS (SELECT 1 FROM created) RETURNING ", 1)
    with_feed = (
        f"WITH created AS ({sql}), audit AS ({audit_from_created}), head AS ({head}), "  # noqa: S608
        f"appended AS ({feed.insert_into} SELECT head.position, {p}, {p}, {p}, {p}, "
        f"orderpay_feed_event(head.position, {p}) FROM head) "
        f"SELECT pg_notify({p}, head.position::text) FROM head"
    )
    return _Statements(combined, order_and_feed=Prepared("orderpay_create_order", with_feed))


def _order_values(order: Order) -> list[Any]:
    values: list[Any] = []
    for name in _ORDER_COLUMNS:
        value = getattr(order, name)
        if name in _ENUMS:
            value = value.value
        elif isinstance(value, datetime):
            value = to_db_time(value)
        values.append(value)
    return values


def _audit_values(event: AuditEvent, now: datetime) -> Sequence[Any]:
    return (
        event.order_id,
        event.field,
        event.from_value,
        event.to_value,
        event.cause[:255],
        event.actor[:64],
        event.request_id,
        to_db_time(now),
    )
