"""The SQLite file holds payment records: it is created owner-only."""

from __future__ import annotations

from pathlib import Path

from server.adapters.db import make_database


def test_a_new_sqlite_database_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    db = make_database(f"sqlite:///{path}")
    db.connect()
    db.execute_sql("CREATE TABLE t (x INTEGER)")
    db.close()
    assert path.stat().st_mode & 0o777 == 0o600
