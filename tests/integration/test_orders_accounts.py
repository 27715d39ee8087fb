"""Orders and merchant accounts on a real database: the account is decided once at create and stored;
idempotency keys stay per user across accounts; existing orders migrate to `default` (0004)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import peewee as pw
import pytest
from playhouse.migrations import Runner

from server.adapters.db import MIGRATIONS_DIR, make_database, migrate
from server.adapters.recon_locals import PeeweeLocalRecords
from server.adapters.tables import OrderRow
from server.adapters.times import to_db_time
from server.app import App
from server.domain.errors import IdempotencyKeyReusedError, InvalidArgumentError
from server.domain.order import CreateOrder
from server.domain.reconciliation import BEIJING, Window
from server.domain.routing import AccountRouter
from server.service.context import Caller
from server.service.orders import OrderService
from tests.support.databases import fresh_postgres, sqlite_url

BFF = Caller("bff", "test")
ROUTER = AccountRouter(
    "direct-pk", {"vip-year": "sp-sub-a"}, frozenset({"direct-pk", "direct-cert", "sp-sub-a"})
)


@pytest.fixture
def orders(app: App) -> OrderService:
    return OrderService(app.uow, app.clock, timedelta(minutes=30), read=app.read, router=ROUTER)


def test_the_account_is_routed_by_hint_then_product_then_default(orders: OrderService, rid: str) -> None:
    hinted = orders.create_order(CreateOrder("k1", f"u-{rid}", "vip-month", 1, merchant="direct-cert"), BFF)
    by_product = orders.create_order(CreateOrder("k2", f"u-{rid}", "vip-year", 1), BFF)
    default = orders.create_order(CreateOrder("k3", f"u2-{rid}", "vip-month", 1), BFF)
    assert (hinted.order.account, by_product.order.account, default.order.account) == (
        "direct-cert", "sp-sub-a", "direct-pk",
    )  # fmt: skip
    stored = orders.get_order(hinted.order.order_id)
    assert stored.account == "direct-cert"


def test_an_unknown_merchant_hint_is_invalid_and_stores_nothing(
    orders: OrderService, app: App, rid: str
) -> None:
    with pytest.raises(InvalidArgumentError, match="merchant"):
        orders.create_order(CreateOrder("k", f"u-{rid}", "vip-month", 1, merchant="nobody"), BFF)
    with app.db.connection_context():
        assert OrderRow.select().where(OrderRow.user_id == f"u-{rid}").count() == 0


def test_a_key_reused_for_another_account_is_refused(orders: OrderService, rid: str) -> None:
    orders.create_order(CreateOrder("k", f"u-{rid}", "vip-month", 1, merchant="direct-pk"), BFF)
    with pytest.raises(IdempotencyKeyReusedError):
        orders.create_order(CreateOrder("k", f"u-{rid}", "vip-month", 1, merchant="direct-cert"), BFF)


def test_duplicate_storm_across_accounts_makes_one_order_per_key(
    orders: OrderService, app: App, rid: str
) -> None:
    hints = (None, "direct-pk", "direct-cert", "sp-sub-a")
    keys = [(f"u-{rid}-{i}", f"req-{i}", hints[i % 4]) for i in range(40)]
    calls = [keys[i % 40] for i in range(600)]

    def create(key: tuple[str, str, str | None]) -> tuple[str, str]:
        cmd = CreateOrder(
            request_id=key[1], user_id=key[0], product_id="vip-month", quantity=1, merchant=key[2]
        )
        order = orders.create_order(cmd, BFF).order
        return order.order_id, order.account

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(create, calls))
    by_key: dict[tuple[str, str, str | None], set[tuple[str, str]]] = {}
    for key, got in zip(calls, results, strict=True):
        by_key.setdefault(key, set()).add(got)
    assert all(len(got) == 1 for got in by_key.values())
    assert {key: next(iter(got))[1] for key, got in by_key.items()} == {
        key: key[2] or "direct-pk" for key in keys
    }
    with app.db.connection_context():
        assert OrderRow.select().where(OrderRow.user_id.startswith(f"u-{rid}-")).count() == 40


def _old_schema_with_an_order(db: pw.Database, tmp_path: Path) -> None:
    """The schema as it was before 0004, holding one order written by the code of then."""
    before = tmp_path / "migrations-before-0004"
    before.mkdir()
    for path in sorted(Path(MIGRATIONS_DIR).glob("000[0-3]_*.py")):
        shutil.copy(path, before / path.name)
    with db.connection_context():
        Runner(db, before).up()
        now = datetime.now(UTC).replace(tzinfo=None)
        columns = {
            "order_id": "ord_old", "out_trade_no": "OPOLD0000000000001", "user_id": "u-old",
            "request_id": "r",
            "fingerprint": "f", "product_id": "vip-month", "kind": "VIP", "quantity": 1, "total_fee": 100,
            "description": "d", "attach": "", "status": "UNPAID", "fulfilment": "PENDING",
            "fulfilment_reason": "", "version": 1, "expires_at": now, "paid_fee": 0, "refunded_fee": 0,
            "sync_attempts": 0, "created_at": now, "updated_at": now,
        }  # fmt: skip
        names = ", ".join(columns)
        marks = ", ".join([db.param] * len(columns))
        insert = f"INSERT INTO orders ({names}) VALUES ({marks})"  # noqa: S608 - our own column names
        db.execute_sql(insert, tuple(columns.values()))


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[pw.Database]:
    if request.param == "sqlite":
        db = make_database(sqlite_url(tmp_path), pool_size=2)
        yield db
        db.close_all()
        return
    with fresh_postgres(request.getfixturevalue("postgres_admin")) as url:
        db = make_database(url, pool_size=2)
        yield db
        db.close_all()


def test_existing_orders_migrate_to_the_default_account(empty_database: pw.Database, tmp_path: Path) -> None:
    _old_schema_with_an_order(empty_database, tmp_path)
    assert migrate(empty_database) == ["0004_accounts"]
    with empty_database.connection_context():
        (account,) = empty_database.execute_sql(
            "SELECT account FROM orders WHERE order_id = 'ord_old'"
        ).fetchone()
    assert account == "default"


def test_a_bill_only_expects_the_orders_of_its_accounts(orders: OrderService, app: App, rid: str) -> None:
    paid_at = datetime.now(UTC)
    made = {}
    for account in ("direct-pk", "direct-cert"):
        cmd = CreateOrder(f"k-{account}", f"u-{rid}-{account}", "vip-month", 1, merchant=account)
        order = orders.create_order(cmd, BFF)
        made[account] = order.order
    with app.db.connection_context():
        for account, order in made.items():
            paid = {"transaction_id": f"42{rid}{account[-2:]}", "paid_fee": order.total_fee}
            OrderRow.update(**paid, paid_at=to_db_time(paid_at)).where(
                OrderRow.order_id == order.order_id
            ).execute()
        day = paid_at.astimezone(BEIJING).date()
        mine = PeeweeLocalRecords().local_payments([], [], Window.of(day, accounts=frozenset({"direct-pk"})))
        everyone = PeeweeLocalRecords().local_payments([], [], Window.of(day))
    ours = {p.order_id for p in mine}
    assert made["direct-pk"].order_id in ours
    assert made["direct-cert"].order_id not in ours
    assert {made["direct-pk"].order_id, made["direct-cert"].order_id} <= {p.order_id for p in everyone}
