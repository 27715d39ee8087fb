"""Migration 0010 (issue 18 §5): reconciliation rows from before it become the account `default`, code
from before it (which names no account) still writes, and each account then claims, stores and reports
a day of its own. SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import peewee as pw
import pytest
from playhouse.migrations import Runner

from server.adapters.db import MIGRATIONS_DIR, bind, make_database, migrate
from server.adapters.recon_store import PeeweeReconStore
from server.domain.reconciliation import Difference, ExceptionKind, ExceptionStatus
from tests.support.databases import fresh_postgres, sqlite_url

DAY = date(2026, 3, 9)
# What the ORM of then filled in for a row (its Python-side defaults).
RUN_DEFAULTS = {
    "bill_rows": 0, "matched": 0, "deferred": 0, "payments_fen": 0, "refunds_fen": 0, "fees_fen": 0,
    "error": "", "version": 1,
}  # fmt: skip
EXCEPTION_DEFAULTS = {
    "out_refund_no": "", "local_fen": 0, "remote_fen": 0, "detail": "", "resolution": "", "resolved_by": "",
    "version": 1,
}  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[pw.Database]:
    if request.param == "sqlite":
        db = make_database(sqlite_url(tmp_path), pool_size=2)
        yield db
        db.close_all()
        return
    admin = request.getfixturevalue("postgres_admin")
    with fresh_postgres(admin) as url:
        db = make_database(url, pool_size=2)
        yield db
        db.close_all()


def _before_0010(db: pw.Database, tmp_path: Path) -> None:
    before = tmp_path / "migrations-before-0010"
    before.mkdir()
    for path in sorted(Path(MIGRATIONS_DIR).glob("000[0-9]_*.py")):
        shutil.copy(path, before / path.name)
    with db.connection_context():
        Runner(db, before).up()


def _old_insert(db: pw.Database, table: str, **columns: object) -> None:
    """A row as the code from before 0010 writes it: no account named."""
    names = ", ".join(columns)
    marks = ", ".join([db.param] * len(columns))
    db.execute_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(columns.values()))  # noqa: S608


def test_rows_from_before_become_default_and_each_account_then_has_its_own_day(
    old_db: pw.Database, tmp_path: Path
) -> None:
    _before_0010(old_db, tmp_path)
    now = datetime.now(UTC).replace(tzinfo=None)
    with old_db.connection_context():
        _old_insert(old_db, "recon_runs", bill_date=DAY.isoformat(), status="DONE", claim_token="t",
                    claimed_at=now, finished_at=now, **RUN_DEFAULTS)  # fmt: skip
        _old_insert(old_db, "recon_exceptions", bill_date=DAY.isoformat(), kind="MISSING_REMOTE",
                    out_trade_no="OP1", status="OPEN", created_at=now, updated_at=now,
                    **EXCEPTION_DEFAULTS)  # fmt: skip
    assert migrate(old_db) == ["0010_recon_accounts"] + [
        name
        for name in sorted(p.stem for p in Path(MIGRATIONS_DIR).glob("[0-9]*.py"))
        if name > "0010_recon_accounts"
    ]
    bind(old_db)
    store = PeeweeReconStore()
    with old_db.connection_context():
        # Code from before 0010 still inserts (the default lives in the database too).
        _old_insert(old_db, "recon_exceptions", bill_date=DAY.isoformat(), kind="MISSING_LOCAL",
                    out_trade_no="OP2", status="OPEN", created_at=now, updated_at=now,
                    **EXCEPTION_DEFAULTS)  # fmt: skip
        assert store.summary(DAY, "default") is not None
        assert {(e.account, e.out_trade_no) for e in store.exceptions(DAY)} == {
            ("default", "OP1"), ("default", "OP2"),
        }  # fmt: skip
        # Another account claims the same day, and records the same difference, without a conflict.
        claim = store.claim(DAY, "brand-b", "tok-b", datetime.now(UTC), timedelta(minutes=15))
        assert claim is not None
        assert store.claim(DAY, "brand-b", "tok-c", datetime.now(UTC), timedelta(minutes=15)) is None
        same = Difference(ExceptionKind.MISSING_REMOTE, "OP1", local_fen=100)
        assert store.record(DAY, "brand-b", [(same, ExceptionStatus.OPEN)], datetime.now(UTC)) == [same]
        assert store.record(DAY, "default", [(same, ExceptionStatus.OPEN)], datetime.now(UTC)) == []
        counts = store.open_counts()
        assert counts[("default", ExceptionKind.MISSING_REMOTE)] == 1
        assert counts[("brand-b", ExceptionKind.MISSING_REMOTE)] == 1
        assert store.last_finished_days() == {"default": DAY}
