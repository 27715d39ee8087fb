"""The invariants a load run must leave behind, checked with read-only SQL on the server's database.

Each rule is one SELECT that returns the offending rows, so a clean database returns none and the
report can quote examples. The rules hold for the whole database, whatever else ran on it; the
optional `Expected` counts are scoped to one run's users (a `user_id` prefix) and say whether every
key the run sent became exactly one order, and every payment exactly one fulfilment.

Usable from tests: `check_invariants("sqlite:///path.db")` returns an `InvariantReport`.
"""

# Every statement is built from the constant rules below and a bound parameter, never from input.
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import peewee as pw
from psycopg2.extensions import parse_dsn

SAMPLE_ROWS = 5
PAID_STATUSES = "('PAID', 'PARTIALLY_REFUNDED', 'REFUNDED')"
# Refunds that hold money: not CLOSED / ABNORMAL (proto/orderpay/v1/pay_service.proto, RefundStatus).
LIVE_REFUND_STATUSES = "('PROCESSING', 'SUCCESS')"


@dataclass(frozen=True)
class Rule:
    name: str
    says: str
    offenders_sql: str  # rows that break the rule


RULES: tuple[Rule, ...] = (
    Rule(
        "one_order_per_key",
        "one order per (user_id, request_id)",
        "SELECT user_id, request_id, COUNT(*) AS n FROM orders"
        " GROUP BY user_id, request_id HAVING COUNT(*) > 1",
    ),
    Rule(
        "one_unpaid_order_per_product",
        "at most one UNPAID order per (user_id, product_id)",
        "SELECT user_id, product_id, COUNT(*) AS n FROM orders WHERE status = 'UNPAID'"
        " GROUP BY user_id, product_id HAVING COUNT(*) > 1",
    ),
    Rule(
        "one_fulfilment_row_per_order",
        "at most one fulfilment row per order",
        "SELECT order_id, COUNT(*) AS n FROM fulfilments GROUP BY order_id HAVING COUNT(*) > 1",
    ),
    Rule(
        "paid_orders_have_fulfilment",
        "every paid order (not HELD) has its fulfilment row",
        "SELECT o.order_id, o.status FROM orders o LEFT JOIN fulfilments f ON f.order_id = o.order_id"
        f" WHERE o.status IN {PAID_STATUSES} AND o.fulfilment <> 'HELD' AND f.order_id IS NULL",
    ),
    Rule(
        "fulfilments_only_for_paid_orders",
        "no fulfilment row for an order that was never paid",
        "SELECT f.order_id, f.status FROM fulfilments f LEFT JOIN orders o ON o.order_id = f.order_id"
        " WHERE o.order_id IS NULL OR o.transaction_id IS NULL",
    ),
    Rule(
        "one_grant_per_order",
        "fulfilment ran at most once per order (one grants row)",
        "SELECT order_id, COUNT(*) AS n FROM grants GROUP BY order_id HAVING COUNT(*) > 1",
    ),
    Rule(
        "succeeded_fulfilments_granted",
        "every SUCCEEDED fulfilment has its grants row",
        "SELECT o.order_id, o.fulfilment FROM orders o LEFT JOIN grants g ON g.order_id = o.order_id"
        " WHERE o.fulfilment = 'SUCCEEDED' AND g.order_id IS NULL",
    ),
    Rule(
        "grants_only_for_paid_orders",
        "no grant for an order that was never paid",
        "SELECT g.order_id, g.state FROM grants g LEFT JOIN orders o ON o.order_id = g.order_id"
        " WHERE o.order_id IS NULL OR o.transaction_id IS NULL",
    ),
    Rule(
        "stock_never_negative",
        "products.stock >= 0",
        "SELECT product_id, stock FROM products WHERE stock < 0",
    ),
    Rule(
        "refunds_within_paid",
        "sum of PROCESSING + SUCCESS refunds <= orders.paid_fee",
        "SELECT o.order_id, o.paid_fee, SUM(r.amount) AS refunded FROM orders o"
        f" JOIN refunds r ON r.order_id = o.order_id WHERE r.status IN {LIVE_REFUND_STATUSES}"
        " GROUP BY o.order_id, o.paid_fee HAVING SUM(r.amount) > o.paid_fee",
    ),
    Rule(
        "refunded_fee_within_paid",
        "0 <= orders.refunded_fee <= orders.paid_fee",
        "SELECT order_id, paid_fee, refunded_fee FROM orders"
        " WHERE refunded_fee < 0 OR refunded_fee > paid_fee",
    ),
)


@dataclass(frozen=True)
class Expected:
    """What one run should have produced, counted over orders whose user_id starts with `user_prefix`."""

    user_prefix: str
    orders: int | None = None
    paid: int | None = None  # orders with a transaction, and as many fulfilment rows
    fulfilled: int | None = None  # orders whose fulfilment SUCCEEDED


@dataclass(frozen=True)
class InvariantResult:
    name: str
    says: str
    ok: bool
    violations: int
    examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InvariantReport:
    results: list[InvariantResult]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def failed(self) -> list[InvariantResult]:
        return [result for result in self.results if not result.ok]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "results": [asdict(result) for result in self.results]}


def open_readonly(database_url: str) -> pw.Database:
    """A connection that cannot write: SQLite `mode=ro`, PostgreSQL read-only transactions."""
    parsed = urlparse(database_url)
    if parsed.scheme == "sqlite":
        path = database_url.removeprefix("sqlite:///")
        return pw.SqliteDatabase(f"file:{path}?mode=ro", uri=True)
    if parsed.scheme in {"postgresql", "postgres"}:
        params = parse_dsn(database_url)  # libpq's reading: multi-host URLs (a failover formation) too
        database = params.pop("dbname")
        if params.get("target_session_attrs") == "read-write":
            params["target_session_attrs"] = "primary"  # "read-write" refuses our read-only session
        return pw.PostgresqlDatabase(database, **params, options="-c default_transaction_read_only=on")
    raise ValueError(f"unsupported database url {database_url!r} (want sqlite:/// or postgresql://)")


class DatabaseUnusableError(ValueError):
    """The invariant check could not read the database it was pointed at."""


POINT_IT = (
    "point --database-url (or ORDERPAY_DATABASE_URL) at the server's database, e.g."
    " sqlite:////ABSOLUTE/PATH/.orderpay/orderpay.db, or skip the check with --no-check"
)


def probe(database_url: str) -> None:
    """Fail before a load run, not after it, when the invariant check could not read the database.

    One sentence: which database (for SQLite, the file it resolves to from here: the default URL is
    relative to the working directory), what is wrong, and how to point the check at the right one.
    """
    where = _describe(database_url)
    parsed = urlparse(database_url)
    if parsed.scheme == "sqlite" and not Path(database_url.removeprefix("sqlite:///")).is_file():
        raise DatabaseUnusableError(f"no database file at {where}; {POINT_IT}")
    db = open_readonly(database_url)
    try:
        with db.connection_context():
            _rows(db, "SELECT 1 FROM orders LIMIT 1")
    except (pw.OperationalError, pw.ProgrammingError, pw.InterfaceError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseUnusableError(f"cannot read orders from {where} ({first}); {POINT_IT}") from exc


def confirm_server_database(database_url: str, expected: Expected | None, successes: int) -> None:
    """Before judging a database: does it hold what this run wrote? A server that answered but whose
    writes are not here was using another database, and judging this one would report its emptiness
    as the server's failure."""
    if expected is None or not expected.orders or successes == 0:
        return
    db = open_readonly(database_url)
    with db.connection_context():
        ((found,),) = _rows(
            db,
            f"SELECT COUNT(*) FROM orders WHERE substr(user_id, 1, {len(expected.user_prefix)}) = {db.param}",
            (expected.user_prefix,),
        )
    if int(found) == 0:
        raise DatabaseUnusableError(
            f"none of this run's orders are in {_describe(database_url)}, though the server accepted"
            f" {successes} calls: it is not the database the server writes to; {POINT_IT}"
        )


def _describe(database_url: str) -> str:
    parsed = urlparse(database_url)
    if parsed.scheme == "sqlite":
        return f"{Path(database_url.removeprefix('sqlite:///')).resolve()} ({database_url})"
    if parsed.password is not None:  # never print a password
        return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)).geturl()
    return database_url


def check_invariants(database_url: str, expected: Expected | None = None) -> InvariantReport:
    """Run every rule (and the expected counts, if given) against the database at `database_url`."""
    db = open_readonly(database_url)
    with db.connection_context():
        results = [_check_rule(db, rule) for rule in RULES]
        if expected is not None:
            results += _check_expected(db, expected)
    return InvariantReport(results)


def _check_rule(db: pw.Database, rule: Rule) -> InvariantResult:
    ((violations,),) = _rows(db, f"SELECT COUNT(*) FROM ({rule.offenders_sql}) AS offenders")
    rows = _rows(db, f"{rule.offenders_sql} LIMIT {SAMPLE_ROWS}")
    return InvariantResult(
        rule.name, rule.says, violations == 0, int(violations), [_show(row) for row in rows]
    )


def _check_expected(db: pw.Database, expected: Expected) -> list[InvariantResult]:
    scope = f"substr(o.user_id, 1, {len(expected.user_prefix)}) = {db.param}"
    counts = {
        "orders": (expected.orders, f"SELECT COUNT(*) FROM orders o WHERE {scope}"),
        "paid": (
            expected.paid,
            f"SELECT COUNT(*) FROM orders o WHERE {scope} AND o.transaction_id IS NOT NULL",
        ),
        "fulfilment_rows": (
            expected.paid,
            f"SELECT COUNT(*) FROM fulfilments f JOIN orders o ON o.order_id = f.order_id WHERE {scope}",
        ),
        "fulfilled": (
            expected.fulfilled,
            f"SELECT COUNT(*) FROM orders o WHERE {scope} AND o.fulfilment = 'SUCCEEDED'",
        ),
    }
    results = []
    for label, (want, sql) in counts.items():
        if want is None:
            continue
        ((got,),) = _rows(db, sql, (expected.user_prefix,))
        results.append(
            InvariantResult(
                f"run_{label}",
                f"this run left exactly {want} {label.replace('_', ' ')}",
                int(got) == want,
                abs(int(got) - want),
                [] if int(got) == want else [f"expected {want}, found {got}"],
            )
        )
    return results


def _rows(db: pw.Database, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    cursor = db.execute_sql(sql, params)  # type: ignore[no-untyped-call]  # peewee's stubs leave it untyped
    return list(cursor.fetchall())


def _show(row: tuple[Any, ...]) -> str:
    return ", ".join(str(value) for value in row)
