"""PostgreSQL connections that follow the primary: a multi-host URL, a pool that learns a server is
gone from the error (not from a ping per checkout), and a COMMIT that is never falsely acknowledged.

A failover (pg_auto_failover, Patroni, ...) moves the writable server; libpq finds it again on every
new connection (`host=h1,h2 target_session_attrs=read-write`). What the pool must add:

- A connection whose server died or was demoted fails its next statement. That call fails UNAVAILABLE
  (peewee OperationalError, a transient fault); the connection is discarded, and so is every idle
  one (they point at the same server), so the calls after it open connections to the new primary.
- A COMMIT waiting for synchronous replication that is cancelled returns *success* with only a
  WARNING ("canceling wait for synchronous replication ... The transaction has already committed
  locally, but might not have been replicated to the standby"). That is not an acknowledgement: the
  write may vanish in the failover. It is reported as UNAVAILABLE (`ReplicationUnconfirmedError`);
  the caller retries with its idempotency key and finds the row if it survived.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import peewee as pw
import psycopg2
import psycopg2.errors
import structlog
from playhouse.pool import PooledPostgresqlDatabase
from psycopg2.extensions import TRANSACTION_STATUS_UNKNOWN, parse_dsn

log = structlog.get_logger("orderpay.db")

# libpq settings orderpay adds when the URL does not say: fail over to the next host quickly, and
# notice a server that vanished without closing its sockets (a dead host, not only a dead process).
CONNECT_DEFAULTS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "3",
    "keepalives_count": "3",
}
# SQLSTATEs that mean "this server cannot take our writes now; another may": connection exceptions
# (08xxx), admin/crash shutdown, starting up, a read-only (standby or demoting) server.
SERVER_GONE_STATES = frozenset({"57P01", "57P02", "57P03", "25006"})
SERVER_GONE_ERRORS: tuple[type[Exception], ...] = (
    psycopg2.InterfaceError,  # "connection already closed"
    psycopg2.errors.AdminShutdown,
    psycopg2.errors.CrashShutdown,
    psycopg2.errors.CannotConnectNow,
    psycopg2.errors.ReadOnlySqlTransaction,
)
SYNC_REP_CANCELLED = "synchronous replication"  # in both WARNINGs PostgreSQL sends when it stops waiting


class ReplicationUnconfirmedError(pw.OperationalError):
    """COMMIT returned, but PostgreSQL said it stopped waiting for the synchronous standby: committed
    on this server only, possibly lost in a failover. Never an acknowledgement."""


class PrimaryLostError(pw.OperationalError):
    """The server of this connection is gone or no longer writable (a failover); retry elsewhere."""


def connect_params(url: str, *, synchronous_commit: str = "", application_name: str = "") -> dict[str, Any]:
    """libpq's own reading of a postgresql:// URL (multi-host included), with orderpay's defaults and
    the session's synchronous_commit when one is asked for. Raises psycopg2.ProgrammingError on what
    libpq cannot parse (config.check_database_url refuses that at start)."""
    defaults = {**CONNECT_DEFAULTS, **({"application_name": application_name} if application_name else {})}
    params: dict[str, Any] = {**defaults, **parse_dsn(url)}
    if synchronous_commit:
        params["options"] = f"{params.get('options', '')} -c synchronous_commit={synchronous_commit}".strip()
    return params


def server_gone(error: BaseException) -> bool:
    """True for an error that says the connection's server is gone or read-only (not a bad query)."""
    original = getattr(error, "orig", None) or error  # peewee keeps the driver's exception as .orig
    if isinstance(original, SERVER_GONE_ERRORS):
        return True
    code = getattr(original, "pgcode", None)
    if code is not None:
        return code.startswith("08") or code in SERVER_GONE_STATES
    # No SQLSTATE and no subclass: libpq's own failure (the socket broke, the connection was refused).
    return type(original) is psycopg2.OperationalError


class FailoverPostgresqlDatabase(PooledPostgresqlDatabase):
    """The pooled PostgreSQL database orderpay uses, single host or multi-host alike."""

    def __init__(self, database: str, *, prepares: bool = True, **kwargs: Any) -> None:
        super().__init__(database, **kwargs)
        self.prepares = prepares  # server-side prepared statements (server/adapters/prepared.py)
        self._doomed: set[int] = set()  # connections seen failing: never back into the pool
        self._doomed_lock = threading.Lock()
        self._lazy = threading.local()  # per thread: the BEGIN the next statement carries

    # -- the pool: no round trip per checkout -------------------------------------------------------
    def _is_closed(self, conn: Any) -> bool:
        # Local state only (peewee's default sends `SELECT 1` on every checkout). A connection whose
        # server went away is found out by its next statement, which discards it and the idle rest.
        return bool(conn.closed) or conn.get_transaction_status() == TRANSACTION_STATUS_UNKNOWN

    def _can_reuse(self, conn: Any) -> bool:
        with self._doomed_lock:
            if id(conn) in self._doomed:
                self._doomed.discard(id(conn))
                return False
        return bool(super()._can_reuse(conn))

    # -- statements: classify failures; BEGIN rides on the transaction's first statement -------------
    def execute_sql(self, sql: str, params: Any = None) -> Any:
        begin = self._lazy.__dict__.pop("begin", None)
        if begin is not None:  # one round trip for both: the server runs them in order
            sql = f"{begin}; {sql}"
        with self._guard():
            return super().execute_sql(sql, params)

    def begin(self, isolation_level: Any = None) -> None:
        """Sent with the next statement, not on its own: a round trip fewer per transaction (and a
        transaction that runs no statement sends neither BEGIN nor COMMIT)."""
        peewee: Any = self  # peewee's own attributes (the stubs do not list them)
        if isolation_level is None:
            isolation_level = peewee._isolation_level
        level = isolation_level and peewee._adapter.isolation_level_str(isolation_level)
        self._lazy.begin = f"BEGIN TRANSACTION ISOLATION LEVEL {level}" if level else "BEGIN"
        if self.is_closed():
            self.connect()

    def cursor(self, named_cursor: Any = None) -> Any:
        cursor = super().cursor(named_cursor)
        begin = self._lazy.__dict__.pop("begin", None)
        if begin is not None:  # a caller with a cursor of its own: BEGIN goes first, on its own
            with self._guard(), pw.__exception_wrapper__:  # type: ignore[attr-defined]
                cursor.execute(begin)
        return cursor

    def rollback(self) -> None:
        if self._lazy.__dict__.pop("begin", None) is not None:
            return  # nothing was sent since BEGIN: there is no transaction on the server
        conn = None if self.is_closed() else self.connection()
        if conn is not None and conn.closed:
            return  # the connection broke: the server dropped the transaction; keep the original error
        with self._guard():
            super().rollback()

    def commit(self) -> None:
        if self._lazy.__dict__.pop("begin", None) is not None:
            return  # nothing was sent since BEGIN: nothing to commit
        conn = None if self.is_closed() else self.connection()
        notices: list[str] = conn.notices if conn is not None else []
        del notices[:]  # psycopg2 keeps the last 50; only this COMMIT's matter
        with self._guard():
            super().commit()
        if any(SYNC_REP_CANCELLED in notice for notice in notices):
            self._doom(conn)
            log.warning("db.commit_unconfirmed", notice=notices[-1].strip())
            raise ReplicationUnconfirmedError(
                "COMMIT was not confirmed by the synchronous standby (the wait was cancelled); "
                "its outcome is unknown: retry with the same idempotency key"
            )

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except pw.DatabaseError as error:
            if not server_gone(error):
                raise
            conn = None if self.is_closed() else self.connection()
            if conn is not None:
                self._doom(conn)
            self.close_idle()  # the idle connections went to the same server
            log.warning("db.server_gone", error=str(error).strip().splitlines()[0][:200])
            if isinstance(error, pw.OperationalError):
                raise  # already a transient fault (UNAVAILABLE)
            raise PrimaryLostError(str(error)) from error

    def _doom(self, conn: Any) -> None:
        with self._doomed_lock:
            self._doomed.add(id(conn))


def make_postgres(
    url: str,
    *,
    pool_size: int,
    synchronous_commit: str = "",
    application_name: str = "",
    prepares: bool = True,
) -> FailoverPostgresqlDatabase:
    params = connect_params(url, synchronous_commit=synchronous_commit, application_name=application_name)
    database = params.pop("dbname")
    return FailoverPostgresqlDatabase(
        database, prepares=prepares, max_connections=pool_size, stale_timeout=300, timeout=10, **params
    )


def is_writable_primary(db: pw.Database) -> bool:
    """Readiness on PostgreSQL: a connection reaches a server that takes writes (not a standby, not a
    primary being demoted or promoted). False on any database error."""
    try:
        with db.connection_context():
            row = db.execute_sql(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"
            ).fetchone()
    except pw.DatabaseError:
        return False
    return not row[0]
