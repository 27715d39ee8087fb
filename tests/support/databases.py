"""Test databases: a fresh SQLite file, and a fresh PostgreSQL database when one answers.

PostgreSQL comes from ORDERPAY_TEST_DATABASE_URL when set, else 127.0.0.1:5432 when it answers;
otherwise the PostgreSQL half is skipped, and the skip says why.

Migrating a database costs a few hundred milliseconds of DDL per test module; so each test process
migrates one template database once and every fresh database is a copy of it (`CREATE DATABASE ...
TEMPLATE`, a file copy). Tests of the migrations themselves ask for an empty database (no template).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg2

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str | None:
    url = os.environ.get("ORDERPAY_TEST_DATABASE_URL")
    if url:
        return url
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return DEFAULT_PG
    except OSError:
        return None


@contextmanager
def migrated_template(admin_url: str) -> Iterator[str]:
    """A database with every migration applied, to copy from; yields its name, DROPs it afterwards."""
    from server.adapters.db import make_database, migrate

    with fresh_postgres(admin_url) as url:
        db = make_database(url, pool_size=1)
        try:
            migrate(db)
        finally:
            db.close_all()  # type: ignore[attr-defined]  # pooled: a template must have no sessions
        yield urlparse(url).path.lstrip("/")


@contextmanager
def fresh_postgres(admin_url: str, template: str | None = None) -> Iterator[str]:
    """CREATE DATABASE orderpay_t_<random> (a copy of `template` when given), yield its URL, DROP it
    afterwards."""
    name = "orderpay_t_" + secrets.token_hex(6)
    parsed = urlparse(admin_url)
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    try:
        yield urlunparse(parsed._replace(path="/" + name))
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'orderpay.db'}"
