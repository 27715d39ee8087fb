"""Database construction from a URL: SQLite (WAL, busy timeout) or pooled PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import peewee as pw
from playhouse.pool import PooledSqliteDatabase

from server.adapters.postgres import is_writable_primary, make_postgres
from server.adapters.tables import database_proxy

MIGRATIONS_DIR = str(Path(__file__).with_name("migrations"))


def make_database(
    url: str,
    *,
    pool_size: int = 40,
    busy_timeout_ms: int = 10_000,
    synchronous_commit: str = "",
    application_name: str = "",
    prepares: bool = True,
) -> pw.Database:
    """`prepares`: PostgreSQL may keep prepared statements per connection (not through a
    transaction-mode pooler: server/adapters/prepared.py)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return _sqlite(url.removeprefix("sqlite:///"), pool_size, busy_timeout_ms)
    if parsed.scheme in {"postgresql", "postgres"}:
        # Single or multi-host (`h1:p1,h2:p2/db?target_session_attrs=read-write`): libpq parses it.
        return make_postgres(
            url,
            pool_size=pool_size,
            synchronous_commit=synchronous_commit,
            application_name=application_name,
            prepares=prepares,
        )
    raise ValueError(f"unsupported database url scheme {parsed.scheme!r} (want sqlite:/// or postgresql://)")


def _sqlite(path: str, pool_size: int, busy_timeout_ms: int) -> pw.Database:
    if path not in {"", ":memory:"}:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Owner-only from the first byte (SQLite gives its -wal/-shm files the same mode).
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
    # IMMEDIATE: writers take the lock at BEGIN, so two readers never deadlock upgrading to writers.
    return PooledSqliteDatabase(
        path,
        max_connections=pool_size,
        stale_timeout=300,
        timeout=10,
        lock_type="IMMEDIATE",
        check_same_thread=False,  # pooled: a connection moves between threads, one at a time
        pragmas={
            "journal_mode": "wal",
            "busy_timeout": busy_timeout_ms,
            "synchronous": "normal",
            "foreign_keys": 1,
        },
    )


def ready(db: pw.Database) -> bool:
    """Readiness: PostgreSQL reaches a writable primary; SQLite answers a trivial query."""
    if isinstance(db, pw.PostgresqlDatabase):
        return is_writable_primary(db)
    try:
        with db.connection_context():
            db.execute_sql("SELECT 1")
    except pw.DatabaseError:
        return False
    return True


def bind(db: pw.Database) -> None:
    """Point the models at `db` (the one process-wide binding; tests rebind per database)."""
    database_proxy.initialize(db)


MIGRATION_LOCK_KEY = 0x0DE5_A11E  # any constant: every orderpay process takes the same advisory lock


def migrate(db: pw.Database) -> list[str]:
    """Apply pending migrations; return the names applied.

    Every `orderpay serve` migrates at start, so several processes (or hosts) may try at once:
    on PostgreSQL they queue on an advisory lock and the later ones find nothing to do.
    """
    from playhouse.migrations import Runner  # noqa: PLC0415 - only the migrate command needs it

    runner = Runner(db, MIGRATIONS_DIR)
    with db.connection_context(), _migration_lock(db):
        before = set(runner.applied())
        runner.up()
        return sorted(set(runner.applied()) - before)


def migrate_with_session(db: pw.Database, session_url: str) -> list[str]:
    """`migrate`, through `session_url` when there is one: the migration lock is a session-level
    advisory lock, which a transaction-pooling pgbouncer would leave held on some server connection."""
    if not session_url:
        return migrate(db)
    direct = make_database(session_url, pool_size=1)
    try:
        return migrate(direct)
    finally:
        direct.close_all()  # type: ignore[attr-defined]  # a pooled database


@contextmanager
def _migration_lock(db: pw.Database) -> Iterator[None]:
    if not isinstance(db, pw.PostgresqlDatabase):
        yield  # SQLite is one host's file; its processes are started one at a time
        return
    db.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    try:
        yield
    finally:
        if not db.connection().closed:  # a broken session took its lock along; keep the first error
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
