"""Migrations: idempotent, and safe when several processes start at once on one PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from server.adapters.db import MIGRATIONS_DIR, make_database, migrate
from tests.support.databases import fresh_postgres, sqlite_url

# Every migration file, whichever helper added it (each has its own number): all apply, in name order.
ALL = sorted(path.stem for path in Path(MIGRATIONS_DIR).glob("[0-9]*.py"))


def test_a_fresh_sqlite_file_migrates_once(tmp_path: Path) -> None:
    db = make_database(sqlite_url(tmp_path), pool_size=2)
    applied = migrate(db)
    assert applied == ALL  # name order; gaps are fine
    assert applied[:4] == ["0001_initial", "0003_reconciliation", "0004_accounts", "0005_event_log"]
    assert migrate(db) == []
    assert {"orders", "products", "refunds", "notifications", "fulfilments"} <= set(db.get_tables())
    assert {"recon_runs", "recon_files", "recon_lines", "recon_exceptions"} <= set(db.get_tables())


@pytest.mark.postgres
def test_concurrent_migrations_on_postgres_apply_exactly_once(postgres_admin: str) -> None:
    with fresh_postgres(postgres_admin) as url:
        databases = [make_database(url, pool_size=2) for _ in range(4)]  # as four processes would
        with ThreadPoolExecutor(max_workers=4) as pool:
            applied = list(pool.map(migrate, databases))
        assert sorted(map(tuple, applied)) == [
            (),
            (),
            (),
            tuple(ALL),
        ]
        for db in databases:
            db.close_all()
