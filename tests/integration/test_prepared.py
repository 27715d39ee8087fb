"""Prepared statements on PostgreSQL (server/adapters/prepared.py): prepared once per connection, kept
across a rolled-back transaction, and never where the database goes through a transaction pooler."""

from __future__ import annotations

import pytest

from server.adapters.db import make_database
from server.adapters.prepared import Prepared
from tests.support.databases import fresh_postgres

pytestmark = pytest.mark.postgres


def prepared_names(db: object) -> list[str]:
    return [row[0] for row in db.execute_sql("SELECT name FROM pg_prepared_statements")]  # type: ignore[attr-defined]


def test_prepared_once_per_connection_and_kept_after_a_rollback(postgres_admin: str) -> None:
    with fresh_postgres(postgres_admin) as url:
        db = make_database(url, pool_size=2)
        add = Prepared("orderpay_test_add", "SELECT %s::int + %s::int")
        try:
            with db.connection_context():
                assert add.execute(db, (1, 2)).fetchone()[0] == 3
                with db.atomic() as transaction:
                    assert add.execute(db, (2, 2)).fetchone()[0] == 4
                    transaction.rollback()
                assert add.execute(db, (40, 2)).fetchone()[0] == 42  # no second PREPARE: it would fail
                assert prepared_names(db) == ["orderpay_test_add"]
        finally:
            db.close_all()  # type: ignore[attr-defined]


def test_nothing_is_prepared_through_a_transaction_pooler(postgres_admin: str) -> None:
    with fresh_postgres(postgres_admin) as url:
        db = make_database(url, pool_size=2, prepares=False)
        add = Prepared("orderpay_test_add", "SELECT %s::int + %s::int")
        try:
            with db.connection_context():
                assert add.execute(db, (1, 2)).fetchone()[0] == 3
                assert prepared_names(db) == []
        finally:
            db.close_all()  # type: ignore[attr-defined]
