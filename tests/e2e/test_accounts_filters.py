"""`orderpay orders list`, `ops orders` and `ops refunds` filter by merchant account and show it (issue 18
§5): the real CLI, as subprocesses, against the whole stack in one process with the demo accounts."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.adapters.tables import FulfilmentRow
from server.adapters.times import to_db_time
from server.domain.order import CreateOrder, Order
from server.service.context import Caller
from tests.support.console_stack import ADMIN_TOKEN, BFF_TOKEN, LiveStack, live_stack
from tests.support.stack import ROOT
from tests.support.waiting import wait_until

BFF = Caller("bff", "test")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("filters"), accounts=True) as running:
        yield running


def cli(live: LiveStack, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORDERPAY_GRPC_TARGET": live.grpc_target, "ORDERPAY_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# A user's unpaid order of a product is offered again rather than made twice: one product per account.
PRODUCTS = {"direct-pk": "vip-month", "direct-cert": "vip-quarter", "sp-sub-a": "vip-year"}


def orders_of(live: LiveStack, user: str) -> dict[str, Order]:
    made = {}
    for account, product in PRODUCTS.items():
        cmd = CreateOrder(secrets.token_hex(6), user, product, 1, merchant=account)
        made[account] = live.stack.app.orders.create_order(cmd, BFF).order
        assert made[account].account == account
    return made


def test_orders_list_filters_by_account_and_shows_it(live: LiveStack) -> None:
    user = "u-" + secrets.token_hex(4)
    made = orders_of(live, user)
    listed = as_json(
        cli(live, BFF_TOKEN, "orders", "list", "--user-id", user, "--account", "direct-cert", "--json")
    )
    assert [(o["order_id"], o["account"]) for o in listed["orders"]] == [
        (made["direct-cert"].order_id, "direct-cert")
    ]
    every = as_json(cli(live, BFF_TOKEN, "orders", "list", "--user-id", user, "--json"))
    assert {o["account"] for o in every["orders"]} == set(made)
    table = cli(live, BFF_TOKEN, "orders", "list", "--user-id", user, "--account", "sp-sub-a")
    assert table.returncode == 0, table.stderr
    assert "sp-sub-a" in table.stdout
    assert made["sp-sub-a"].order_id in table.stdout
    assert made["direct-pk"].order_id not in table.stdout


def test_orders_list_pages_stay_within_the_account(live: LiveStack) -> None:
    user = "u-" + secrets.token_hex(4)
    for product in ("vip-month", "vip-quarter", "vip-year"):
        cmd = CreateOrder(secrets.token_hex(6), user, product, 1, merchant="direct-pk")
        live.stack.app.orders.create_order(cmd, BFF)
    orders_of(live, "other-" + user)

    def listing(account: str, *more: str) -> subprocess.CompletedProcess[str]:
        return cli(live, BFF_TOKEN, "orders", "list", "--user-id", user, "--account", account, *more)

    first = as_json(listing("direct-pk", "--page-size", "2", "--json"))
    assert first["next_page_token"]
    rest = as_json(
        listing("direct-pk", "--page-size", "2", "--page-token", first["next_page_token"], "--json")
    )
    assert [o["account"] for o in first["orders"] + rest["orders"]] == ["direct-pk"] * 3
    # A token of one account's listing is not a token of another's.
    other = listing("direct-cert", "--page-token", first["next_page_token"])
    assert other.returncode != 0
    assert "page_token" in other.stderr


def test_ops_orders_and_refunds_filter_by_account(live: LiveStack) -> None:
    user = "u-" + secrets.token_hex(4)
    made = orders_of(live, user)
    found = as_json(
        cli(live, ADMIN_TOKEN, "ops", "orders", "--user", user, "--account", "sp-sub-a", "--json")
    )
    assert [(o["order_id"], o["account"]) for o in found["orders"]] == [
        (made["sp-sub-a"].order_id, "sp-sub-a")
    ]
    table = cli(live, ADMIN_TOKEN, "ops", "orders", "--user", user)
    assert table.returncode == 0, table.stderr
    assert {"direct-pk", "direct-cert", "sp-sub-a"} <= set(table.stdout.split())
    refunds = as_json(cli(live, ADMIN_TOKEN, "ops", "refunds", "--account", "nobody-" + user, "--json"))
    assert refunds.get("refunds", []) == []  # proto3 JSON leaves an empty list out


def test_keys_show_is_per_account_and_names_it(live: LiveStack) -> None:
    keys = live.stack.app.settings.credentials_dir
    env = {"ORDERPAY_CREDENTIALS_DIR": keys}
    mchids = set()
    for account in ("direct-pk", "direct-cert", "sp"):
        shown = as_json(cli_env(env, "keys", "show", "--offline", "--account", account, "--json"))
        assert shown["account"] == account
        mchids.add(shown["mchid"])
    assert len(mchids) == 3
    table = cli_env(env, "keys", "show", "--offline", "--account", "direct-cert")
    assert "WeChat Pay keys for account direct-cert, mchid" in table.stdout
    unknown = cli_env(env, "keys", "show", "--offline", "--account", "nobody")
    assert unknown.returncode == 2


def cli_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args], cwd=ROOT, env={**os.environ, **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_ops_jobs_filters_by_account(live: LiveStack) -> None:
    user = "u-" + secrets.token_hex(4)
    made = orders_of(live, user)
    far = to_db_time(datetime.now(UTC) + timedelta(days=3))  # not due: the worker leaves them alone
    with live.stack.app.db.connection_context():
        for order in made.values():
            FulfilmentRow.insert(
                order_id=order.order_id, kind="VIP_PLAN", status="FAILED", attempts=5, next_attempt_at=far,
                last_error="test", created_at=far, updated_at=far,
            ).execute()  # fmt: skip
    found = as_json(
        cli(live, ADMIN_TOKEN, "ops", "jobs", "--kind", "fulfilment", "--account", "direct-cert", "--json")
    )
    assert [job["order_id"] for job in found["fulfilments"]] == [made["direct-cert"].order_id]


def test_a_notification_keeps_its_account_for_the_filter_and_a_replay(live: LiveStack) -> None:
    app = live.stack.app
    assert app.payments is not None
    cmd = CreateOrder(
        secrets.token_hex(6), "u-" + secrets.token_hex(4), "vip-month", 1, merchant="direct-cert"
    )
    order = app.orders.create_order(cmd, BFF).order
    app.payments.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
    mchid = app.payments.gateways.identity("direct-cert").merchant_id
    live.control(f"orders/{order.out_trade_no}/pay?mchid={mchid}")
    wait_until(lambda: live.order(order.order_id).paid_fee > 0, 20, "direct-cert's notification applied")

    def listed(account: str) -> list[dict[str, Any]]:
        found = as_json(cli(live, ADMIN_TOKEN, "ops", "notifications", "--account", account, "--json"))
        return [n for n in found.get("notifications", []) if n.get("out_trade_no") == order.out_trade_no]

    (note,) = listed("direct-cert")  # verified again with direct-cert's keys to show its order number
    assert listed("direct-pk") == []
    # A replay verifies with the keys that verified it the first time: the same answer, nothing new.
    replayed = cli(live, ADMIN_TOKEN, "ops", "replay", note["notification_id"], "--reason", "check", "--json")
    result = as_json(replayed)
    assert "duplicate" in json.dumps(result), result
