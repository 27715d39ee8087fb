"""The event log's append, composed once per SQL dialect: it runs in nearly every write transaction,
and Peewee composing the same UPDATE and INSERT on every call was a fifth of CreateOrder's CPU.

Two statements on both dialects: bump the head row (`UPDATE … RETURNING`, the row lock that orders
appenders by commit: server/adapters/event_log.py), then insert the entries under the positions it
returned. On PostgreSQL the insert also queues the `NOTIFY` (delivered on commit only) in the same
statement, so the append is two round trips, not three.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import peewee as pw

from server.adapters.tables import EventLogHeadRow, EventLogRow

FEED_CHANNEL: Final = "orderpay_feed"
_COLUMNS = ("position", "type", "account", "order_id", "occurred_at", "payload")
_MAX_CACHED_ROWS = 16  # statements for up to this many entries per append are kept


class AppendStatements:
    """The SQL of one dialect; `insert(n)` is the statement for n entries (composed once per n)."""

    def __init__(self, db: pw.Database) -> None:
        ctx = db.get_sql_context
        bump = (
            EventLogHeadRow.update(position=EventLogHeadRow.position + 1)
            .where(EventLogHeadRow.id == 1)
            .returning(EventLogHeadRow.position)
        )
        self.bump = str(ctx().sql(bump).query()[0])
        insert = EventLogRow.insert({getattr(EventLogRow, c): None for c in _COLUMNS})
        # `INSERT INTO "event_log" (columns)`, and one row's `(placeholders)`
        self.insert_into, self._row = (
            str(ctx().sql(insert).query()[0]).split(" RETURNING ", 1)[0].split(" VALUES ", 1)
        )
        self._notify = isinstance(db, pw.PostgresqlDatabase)
        self._param = db.param
        self._inserts: dict[int, str] = {}

    def insert(self, count: int) -> str:
        found = self._inserts.get(count)
        if found is None:
            found = f"{self.insert_into} VALUES {', '.join([self._row] * count)}"
            if self._notify:  # the NOTIFY rides on the insert: one round trip for both
                found = f"WITH appended AS ({found}) SELECT pg_notify({self._param}, {self._param})"
            if count <= _MAX_CACHED_ROWS:
                self._inserts[count] = found
        return found

    def notify_params(self, last: int) -> Sequence[Any]:
        return (FEED_CHANNEL, str(last)) if self._notify else ()


_BY_DIALECT: dict[type[pw.Database], AppendStatements] = {}


def statements(db: pw.Database) -> AppendStatements:
    """The statements for `db`'s dialect (a dict lookup after the first call)."""
    found = _BY_DIALECT.get(type(db))
    if found is None:
        found = _BY_DIALECT[type(db)] = AppendStatements(db)
    return found
