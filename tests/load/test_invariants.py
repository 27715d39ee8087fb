"""The invariant checker catches each broken invariant, and only that one, and passes a clean database.

The clean fixture is written through the real schema (migrations, constraints, unique indexes). To
break it, every table is rebuilt as a constraint-free copy of itself (`CREATE TABLE … AS SELECT`), so
rows the real schema would refuse can be written: the point is the checker, not the schema.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from clients.loadtest.invariants import RULES, Expected, check_invariants
from server.adapters.db import make_database, migrate

NOW = "2025-01-01 00:00:00"
PAID, UNPAID = "ord-paid", "ord-unpaid"
PREFIX = "inv-user-"
Breaker = Callable[[sqlite3.Connection], object]


def _insert(conn: sqlite3.Connection, table: str, **values: object) -> None:
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values()))  # noqa: S608


def _order(conn: sqlite3.Connection, order_id: str, user_id: str, request_id: str, **changes: object) -> None:
    values: dict[str, object] = {
        "order_id": order_id, "out_trade_no": f"OT{order_id}".replace("-", "")[:32], "user_id": user_id,
        "request_id": request_id, "fingerprint": "f" * 64, "product_id": "p1", "kind": "VIP_PLAN",
        "quantity": 1, "total_fee": 1800, "description": "d", "attach": "", "status": "UNPAID",
        "fulfilment": "PENDING", "fulfilment_reason": "", "version": 1, "expires_at": NOW, "paid_fee": 0,
        "refunded_fee": 0, "sync_attempts": 0, "created_at": NOW, "updated_at": NOW,
    }  # fmt: skip
    values.update(changes)
    _insert(conn, "orders", **values)


def _fulfilment(conn: sqlite3.Connection, order_id: str) -> None:
    _insert(
        conn, "fulfilments", order_id=order_id, kind="VIP_PLAN", status="SUCCEEDED", attempts=1,
        next_attempt_at=NOW, last_error="", version=2, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def _grant(conn: sqlite3.Connection, order_id: str) -> None:
    _insert(
        conn, "grants", order_id=order_id, user_id=f"{PREFIX}1", kind="VIP_PLAN", days=30, state="GRANTED",
        created_at=NOW,
    )  # fmt: skip


def _refund(conn: sqlite3.Connection, out_refund_no: str, amount: int, status: str) -> None:
    _insert(
        conn, "refunds", out_refund_no=out_refund_no, order_id=PAID, amount=amount, order_total=1800,
        status=status, reason="", submitted=1, poll_attempts=0, version=1, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


@pytest.fixture
def clean_db(tmp_path: Path) -> Path:
    """A paid, fulfilled, partly refunded order; an unpaid order; a product with stock left."""
    path = tmp_path / "clean.db"
    db = make_database(f"sqlite:///{path}", pool_size=1)
    migrate(db)
    db.close_all()  # type: ignore[attr-defined]
    with sqlite3.connect(path) as conn:
        _insert(
            conn, "products", product_id="p1", kind="GOODS", title="t", description="", price_fen=1800,
            stock=5, active=1, version=1, updated_at=NOW,
        )  # fmt: skip
        _order(
            conn, PAID, f"{PREFIX}1", "key-1", status="PARTIALLY_REFUNDED", fulfilment="SUCCEEDED",
            transaction_id="4200000000000000000000000001", paid_fee=1800, refunded_fee=600, paid_at=NOW,
        )  # fmt: skip
        _fulfilment(conn, PAID)
        _grant(conn, PAID)
        _refund(conn, "R1", 600, "SUCCESS")
        _refund(conn, "R2", 5000, "CLOSED")  # closed refunds hold no money
        _order(conn, UNPAID, f"{PREFIX}2", "key-2")
    return path


def _loosen(path: Path) -> None:
    """Rebuild every table without constraints or indexes, keeping its rows."""
    with sqlite3.connect(path) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in (t for t in tables if not t.startswith("sqlite_")):
            conn.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_strict"')
            conn.execute(f'CREATE TABLE "{table}" AS SELECT * FROM "{table}_strict"')  # noqa: S608
            conn.execute(f'DROP TABLE "{table}_strict"')


BREAKERS: dict[str, Breaker] = {
    "one_order_per_key": lambda c: _order(c, "ord-twin", f"{PREFIX}1", "key-1", product_id="p2"),
    "one_unpaid_order_per_product": lambda c: _order(c, "ord-second", f"{PREFIX}2", "key-3"),
    "one_fulfilment_row_per_order": lambda c: _fulfilment(c, PAID),
    "paid_orders_have_fulfilment": lambda c: c.execute("DELETE FROM fulfilments WHERE order_id = ?", (PAID,)),
    "fulfilments_only_for_paid_orders": lambda c: _fulfilment(c, UNPAID),
    "one_grant_per_order": lambda c: _grant(c, PAID),
    "succeeded_fulfilments_granted": lambda c: c.execute("DELETE FROM grants WHERE order_id = ?", (PAID,)),
    "grants_only_for_paid_orders": lambda c: _grant(c, UNPAID),
    "stock_never_negative": lambda c: c.execute("UPDATE products SET stock = -1"),
    "refunds_within_paid": lambda c: _refund(c, "R3", 1500, "PROCESSING"),
    "refunded_fee_within_paid": lambda c: c.execute(
        "UPDATE orders SET refunded_fee = 2000 WHERE order_id = ?", (PAID,)
    ),
}


def test_every_rule_has_a_breaking_fixture() -> None:
    assert set(BREAKERS) == {rule.name for rule in RULES}


def test_clean_database_passes(clean_db: Path) -> None:
    report = check_invariants(f"sqlite:///{clean_db}", Expected(PREFIX, orders=2, paid=1, fulfilled=1))

    assert report.ok, report.failed
    assert {r.name for r in report.results} >= {rule.name for rule in RULES} | {"run_orders", "run_fulfilled"}


def test_loosened_copy_of_clean_database_still_passes(clean_db: Path) -> None:
    _loosen(clean_db)

    assert check_invariants(f"sqlite:///{clean_db}").ok


@pytest.mark.parametrize("rule", sorted(BREAKERS))
def test_each_broken_invariant_is_caught_alone(clean_db: Path, rule: str) -> None:
    _loosen(clean_db)
    with sqlite3.connect(clean_db) as conn:
        BREAKERS[rule](conn)

    report = check_invariants(f"sqlite:///{clean_db}")

    assert not report.ok
    assert [result.name for result in report.failed] == [rule]
    assert report.failed[0].violations >= 1
    assert report.failed[0].examples


@pytest.mark.parametrize(
    ("expected", "failing"),
    [
        (Expected(PREFIX, orders=3), ["run_orders"]),
        (Expected(PREFIX, paid=2), ["run_paid", "run_fulfilment_rows"]),
        (Expected(PREFIX, fulfilled=0), ["run_fulfilled"]),
    ],
)
def test_run_counts_must_match_exactly(clean_db: Path, expected: Expected, failing: list[str]) -> None:
    report = check_invariants(f"sqlite:///{clean_db}", expected)

    assert [result.name for result in report.failed] == failing


def test_checker_never_writes(clean_db: Path) -> None:
    before = clean_db.read_bytes()

    check_invariants(f"sqlite:///{clean_db}", Expected(PREFIX, orders=2))

    assert clean_db.read_bytes() == before
