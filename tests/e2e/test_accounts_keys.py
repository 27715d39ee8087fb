"""Key rotation and the public-key migration run per account (issue 18 item 4), through real processes:
the sandbox plays several merchants, one of them rotates its platform certificate or moves to the WeChat
Pay public key while another keeps paying and being notified. Every notification of either account is
accepted (so it was verified with that account's own keys), and the untouched account's keys never change."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from clients.client import OrderPayClient
from orderpay.v1 import order_pb2
from sandbox.keys.accounts import AccountSpec, load_accounts
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_until

CHANGING, STEADY = "direct-cert", "direct-pk"
WAVE = 4  # orders per account per step


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("accounts-keys"), database_url, accounts=True) as running:
        yield running


@pytest.fixture(scope="module")
def accounts(stack: Stack) -> dict[str, AccountSpec]:
    return {spec.name: spec for spec in load_accounts(stack.keys)}


def keys_of(stack: Stack, spec: AccountSpec) -> dict[str, Any]:
    """The sandbox's key state of one merchant, without the clock (which moves on its own)."""
    described = dict(stack.control("GET", f"keys?mchid={spec.mchid}"))
    described.pop("now", None)
    return described


def metric(stack: Stack, name: str, labels: str) -> float:
    """One sample of the server's /metrics; `labels` as exposed, in name order."""
    for line in httpx.get(stack.metrics_url, timeout=5).text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == f"{name}{{{labels}}}":
            return float(value)
    return 0.0


def certificate_downloads(stack: Stack, account: str) -> float:
    labels = f'account="{account}",operation="download_certificates",outcome="ok"'
    return metric(stack, "orderpay_provider_calls_total", labels)


def created(stack: Stack, account: str) -> float:
    return metric(stack, "orderpay_orders_total", f'account="{account}",outcome="created"')


def pay_both(bff: OrderPayClient, stack: Stack, step: str) -> list[order_pb2.Order]:
    """WAVE orders on each account, all paid at once, so both accounts' notifications interleave."""
    orders = [
        bff.create_order(f"rot-{step}-{secrets.token_hex(4)}", "vip-month", merchant=account).order
        for account in (CHANGING, STEADY)
        for _ in range(WAVE)
    ]
    for order in orders:
        bff.create_payment(order.order_id, "NATIVE")
    with ThreadPoolExecutor(len(orders)) as pool:
        list(pool.map(lambda order: stack.pay(order.out_trade_no), orders))
    return orders


def settle(bff: OrderPayClient, stack: Stack, orders: list[order_pb2.Order]) -> dict[str, set[str]]:
    """Every order paid and fulfilled; every delivery accepted; the serials each account signed with."""
    for order in orders:
        final = bff.get_order(order.order_id, wait_ms=15_000)
        assert (final.status, final.fulfilment) == (
            order_pb2.ORDER_STATUS_PAID,
            order_pb2.FULFILMENT_SUCCEEDED,
        ), order.account
    by_number = {order.out_trade_no: order.account for order in orders}

    def answered() -> list[dict[str, Any]]:
        return [
            a
            for a in stack.attempts()
            if a["out_trade_no"] in by_number and a["event_type"] == "TRANSACTION.SUCCESS" and a["status"]
        ]

    wait_until(lambda: len(answered()) >= len(orders), 30, "every notification answered")
    serials: dict[str, set[str]] = {CHANGING: set(), STEADY: set()}
    for attempt in answered():
        account = by_number[attempt["out_trade_no"]]
        assert attempt["url"].endswith(f"/{account}")
        assert 200 <= attempt["status"] < 300, attempt  # verified with its own account's keys
        serials[account].add(attempt["serial"])
    return serials


def test_one_accounts_certificate_rotation_leaves_the_other_untouched(
    bff: OrderPayClient, stack: Stack, accounts: dict[str, AccountSpec]
) -> None:
    changing, steady = accounts[CHANGING], accounts[STEADY]
    stack.control("PUT", f"keys/mode?mchid={changing.mchid}", {"mode": "certificate"})
    steady_before = keys_of(stack, steady)
    old = keys_of(stack, changing)["certificates"][0]["serial_no"]
    downloads_before = certificate_downloads(stack, STEADY)
    created_before = {account: created(stack, account) for account in (CHANGING, STEADY)}
    orders: list[order_pb2.Order] = []
    successor = ""
    for step, share in enumerate((0.0, 0.5, 1.0)):  # listed ahead, then the ramp
        rotation = stack.control("POST", f"keys/rotation?mchid={changing.mchid}", {"share": share})
        successor = rotation["rotation"]["successor"]
        orders += pay_both(bff, stack, f"r{step}")
    finished = stack.control("POST", f"keys/rotation/finish?mchid={changing.mchid}")
    assert [c["serial_no"] for c in finished["certificates"]] == [successor]
    orders += pay_both(bff, stack, "done")

    serials = settle(bff, stack, orders)
    assert serials[CHANGING] == {old, successor}
    assert serials[STEADY] == {steady_before["public_key_id"]}
    assert keys_of(stack, steady) == steady_before
    assert certificate_downloads(stack, STEADY) == downloads_before  # its cache never asked
    # CreateOrder is counted under each order's own account (issue 18 §5's metrics).
    assert {a: created(stack, a) - created_before[a] for a in created_before} == {
        CHANGING: 4 * WAVE,
        STEADY: 4 * WAVE,
    }


def test_one_accounts_move_to_the_public_key_leaves_the_other_untouched(
    bff: OrderPayClient, stack: Stack, accounts: dict[str, AccountSpec]
) -> None:
    changing, steady = accounts[CHANGING], accounts[STEADY]
    stack.control("PUT", f"keys/mode?mchid={changing.mchid}", {"mode": "certificate"})
    steady_before = keys_of(stack, steady)
    changing_keys = keys_of(stack, changing)
    certificates = {c["serial_no"] for c in changing_keys["certificates"]}
    orders: list[order_pb2.Order] = []
    for step, share in enumerate((0.0, 0.5, 1.0)):
        stack.control("PUT", f"keys/mode?mchid={changing.mchid}", {"mode": "migrating", "share": share})
        orders += pay_both(bff, stack, f"m{step}")
    stack.control("PUT", f"keys/mode?mchid={changing.mchid}", {"mode": "public_key"})
    orders += pay_both(bff, stack, "pk")

    serials = settle(bff, stack, orders)
    assert serials[CHANGING] == certificates | {changing_keys["public_key_id"]}
    assert changing_keys["public_key_id"] != steady_before["public_key_id"]
    assert serials[STEADY] == {steady_before["public_key_id"]}
    assert keys_of(stack, steady) == steady_before
