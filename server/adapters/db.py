"""Database construction from a URL: SQLite (WAL, busy timeout) or pooled PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import peewee as pw
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from server.adapters.tables import database_proxy

MIGRATIONS_DIR = str(Path(__file__).with_name("migrations"))


def make_database(url: str, *, pool_size: int = 40, busy_timeout_ms: int = 10_000) -> pw.Database:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return _sqlite(url.removeprefix("sqlite:///"), pool_size, busy_timeout_ms)
    if parsed.scheme in {"postgresql", "postgres"}:
        return PooledPostgresqlDatabase(
            parsed.path.lstrip("/"),
            user=unquote(parsed.username or "") or None,
            password=unquote(parsed.password or "") or None,
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            max_connections=pool_size,
            stale_timeout=300,
            timeout=10,
        )
    raise ValueError(f"unsupported database url scheme {parsed.scheme!r} (want sqlite:/// or postgresql://)")


def _sqlite(path: str, pool_size: int, busy_timeout_ms: int) -> pw.Database:
    if path not in {"", ":memory:"}:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
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


def bind(db: pw.Database) -> None:
    """Point the models at `db` (the one process-wide binding; tests rebind per database)."""
    database_proxy.initialize(db)


def is_sqlite(db: pw.Database) -> bool:
    return isinstance(db, pw.SqliteDatabase)


def migrate(db: pw.Database) -> list[str]:
    """Apply pending migrations; return the names applied."""
    from playhouse.migrations import Runner  # noqa: PLC0415 - only the migrate command needs it

    runner = Runner(db, MIGRATIONS_DIR)
    before = set(runner.applied())
    with db.connection_context():
        runner.up()
        return sorted(set(runner.applied()) - before)
