"""CreateOrder's write, composed once per SQL dialect: insert the order first, and its audit row in the
same transaction, in as few statements as the dialect allows.

- PostgreSQL: one statement, so one round trip: a CTE inserts the order (`ON CONFLICT DO NOTHING
  RETURNING`) and the audit row selects from it, so a conflict inserts neither.
- SQLite: `INSERT … ON CONFLICT DO NOTHING RETURNING id`, then the audit row when one came back.

`ON CONFLICT DO NOTHING` with no conflict target covers every unique index (order id, out_trade_no,
the idempotency key, the one-unpaid-order partial index): a duplicate inserts nothing and raises
nothing, so the transaction needs no savepoint; the caller reads the winner only then.
Peewee still composes the column list and placeholders (its quoting and dialect); values are bound as
one list already converted (naive UTC datetimes, enum values), not through 30 field converters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import peewee as pw

from server.adapters.tables import OrderEventRow, OrderRow
from server.adapters.times import to_db_time
from server.domain.order import Order
from server.service.shapes import AuditEvent

_ORDER_COLUMNS = tuple(f.name for f in OrderRow._meta.sorted_fields if not isinstance(f, pw.AutoField))
_AUDIT_COLUMNS = ("order_id", "field", "from_value", "to_value", "cause", "actor", "request_id", "created_at")
_ENUMS = frozenset({"kind", "status", "fulfilment"})


class InsertFirst:
    def __init__(self) -> None:
        self._sql: dict[tuple[str, str], tuple[str, str]] = {}  # (dialect, param) -> statements

    def execute(self, order: Order, audit: AuditEvent, now: datetime) -> bool:
        """True when this order was inserted (with its audit row); False when a unique index already
        held a row that conflicts (nothing was written)."""
        db: Any = OrderRow._meta.database.obj  # the database the proxy is bound to
        order_sql, audit_sql = self._statements(db)
        order_values = _order_values(order)
        audit_values = _audit_values(audit, now)
        if isinstance(db, pw.PostgresqlDatabase):
            # One round trip. (Issue 19's event feed append goes here as one more CTE on `created`.)
            return db.execute_sql(order_sql, [*order_values, *audit_values[1:]]).fetchone() is not None
        if db.execute_sql(order_sql, order_values).fetchone() is None:
            return False
        db.execute_sql(audit_sql, audit_values)  # (issue 19's event feed append goes here too)
        return True

    def _statements(self, db: pw.Database) -> tuple[str, str]:
        key = (type(db).__name__, db.param)
        found = self._sql.get(key)
        if found is None:
            found = self._sql[key] = _compose(db)
        return found

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"InsertFirst({list(self._sql)})"


def _compose(db: pw.Database) -> tuple[str, str]:
    ctx = db.get_sql_context
    order_insert = OrderRow.insert({getattr(OrderRow, c): None for c in _ORDER_COLUMNS}).returning()
    sql = str(ctx().sql(order_insert).query()[0])
    sql = sql.split(" RETURNING ", 1)[0] + ' ON CONFLICT DO NOTHING RETURNING "order_id"'
    audit_insert = OrderEventRow.insert({getattr(OrderEventRow, c): None for c in _AUDIT_COLUMNS})
    audit_sql = str(ctx().sql(audit_insert).query()[0]).split(" RETURNING ", 1)[0]
    if not isinstance(db, pw.PostgresqlDatabase):
        return sql, audit_sql
    columns = audit_sql[audit_sql.index("(") : audit_sql.index(")") + 1]
    table = audit_sql.split(" ", 3)[2]
    placeholders = ", ".join([db.param] * (len(_AUDIT_COLUMNS) - 1))
    combined = (
        f"WITH created AS ({sql}) "  # noqa: S608 - identifiers and placeholders from Peewee, no values
        f"INSERT INTO {table} {columns} SELECT created.order_id, {placeholders} FROM created "
        'RETURNING "order_id"'
    )
    return combined, audit_sql


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
