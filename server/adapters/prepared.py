"""Server-side prepared statements for the hottest PostgreSQL statement (CreateOrder's insert-first).

PostgreSQL plans a statement every time it is sent as text: for CreateOrder's CTE that was ~140 µs of
a ~700 µs order (EXPLAIN's planning time). Prepared once per connection, later executions skip parse
and plan. psycopg2 has no protocol-level prepare, so this is SQL's `PREPARE` / `EXECUTE`; a statement
prepared survives its transaction's rollback, and a connection remembers what it prepared (a weak set:
a new connection after a failover prepares again).

Not through a transaction-mode pooler (pgbouncer): consecutive transactions may run on different
server connections, where the statement is unknown. The database says whether it prepares
(`FailoverPostgresqlDatabase.prepares`, off when `database_session_url` names a pooler's bypass).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from typing import Any

_PLACEHOLDER = re.compile(r"%s")


class Prepared:
    """One statement: `execute` sends EXECUTE on a connection that prepared it, else the text."""

    def __init__(self, name: str, sql: str) -> None:
        self._sql = sql
        count = 0

        def number(_match: re.Match[str]) -> str:
            nonlocal count
            count += 1
            return f"${count}"

        self._prepare = f"PREPARE {name} AS {_PLACEHOLDER.sub(number, sql)}"
        self._execute = f"EXECUTE {name}({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}"
        self._ready: weakref.WeakSet[Any] = weakref.WeakSet()  # connections that prepared it

    def execute(self, db: Any, params: Sequence[Any]) -> Any:
        if not getattr(db, "prepares", False):
            return db.execute_sql(self._sql, params)
        conn = db.connection()
        if conn not in self._ready:
            db.execute_sql(self._prepare)  # on its own: it must not be retried once it succeeded
            self._ready.add(conn)
        return db.execute_sql(self._execute, params)
