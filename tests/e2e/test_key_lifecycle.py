"""WeChat Pay's key life cycle, end to end through real processes (issue 11): every key mode, a
certificate rotation and a 0 → 100 % public-key ramp with a rollback during notification storms,
decryption faults and raw-body traps. Zero genuine notifications may be rejected; each order is
fulfilled exactly once (membership days equal one plan's)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from clients.client import OrderPayClient
from orderpay.v1 import order_pb2
from tests.support.purchase import PLAN_DAYS, membership_days
from tests.support.stack import Stack
from tests.support.waiting import wait_until

WAVE = 8  # orders per wave of a drill
COPIES = 3  # every notification is delivered three times at once (a storm of duplicates)
MODES = ("certificate", "migrating", "public_key", "public_key_only")


@dataclass
class Drill:
    """What a drill did, as the report prints it."""

    orders: list[order_pb2.Order]
    users: list[str]

    def attempts(self, stack: Stack) -> list[dict[str, Any]]:
        wanted = {order.out_trade_no for order in self.orders}
        return [
            a
            for a in stack.attempts()
            if a["out_trade_no"] in wanted
            and a["kind"] == "delivery"
            and a["event_type"] == "TRANSACTION.SUCCESS"
        ]


@pytest.fixture(autouse=True)
def fresh_keys(stack: Stack) -> Iterator[None]:
    yield
    stack.control("PUT", "config", {"faults": {"duplicate_notifications": 0}})
    stack.control("PUT", "keys/mode", {"mode": "public_key"})


def metric(stack: Stack, name: str, **labels: str) -> float:
    """One sample from the server's /metrics (its own listener, next to the sidecar)."""
    text = httpx.get(stack.metrics_url, timeout=5).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == f"{name}{{{wanted}}}" or (not labels and series == name):
            return float(value)
    return 0.0


def create(bff: OrderPayClient, user: str) -> order_pb2.Order:
    order = bff.create_order(user, "vip-month").order
    bff.create_payment(order.order_id, "NATIVE")
    return order


def pay_wave(bff: OrderPayClient, stack: Stack, rid: str, wave: int, drill: Drill) -> None:
    """WAVE orders created, then paid at once: WAVE × COPIES notifications land together."""
    users = [f"keys-{rid}-{wave}-{i}" for i in range(WAVE)]
    orders = [create(bff, user) for user in users]
    with ThreadPoolExecutor(WAVE) as pool:
        list(pool.map(lambda order: stack.pay(order.out_trade_no), orders))
    drill.orders += orders
    drill.users += users


def settle(bff: OrderPayClient, stack: Stack, drill: Drill) -> dict[str, int]:
    """Wait until every order is fulfilled and every copy answered; return the drill's figures."""
    for order in drill.orders:
        final = bff.get_order(order.order_id, wait_ms=15_000)
        assert (final.status, final.fulfilment) == (
            order_pb2.ORDER_STATUS_PAID,
            order_pb2.FULFILMENT_SUCCEEDED,
        )
    expected = len(drill.orders) * COPIES
    wait_until(
        lambda: sum(1 for a in drill.attempts(stack) if a["status"]) >= expected,
        30,
        "every notification copy answered",
    )
    attempts = drill.attempts(stack)
    fulfilled_once = sum(
        1
        for user, order in zip(drill.users, drill.orders, strict=True)
        if membership_days(bff, user, bff.get_order(order.order_id)) == pytest.approx(PLAN_DAYS, abs=0.01)
    )
    statuses = Counter(a["status"] for a in attempts)
    figures = {
        "orders": len(drill.orders),
        "notifications": len(attempts),
        "rejected": sum(n for status, n in statuses.items() if not status or not 200 <= status < 300),
        "fulfilled_exactly_once": fulfilled_once,
    }
    print(f"\ndrill figures: {figures}; serials: {dict(Counter(a['serial'] for a in attempts))}")
    return figures


@pytest.mark.parametrize("mode", MODES)
def test_each_key_mode_end_to_end(bff: OrderPayClient, stack: Stack, rid: str, mode: str) -> None:
    body: dict[str, Any] = {"mode": mode}
    if mode == "migrating":
        body["share"] = 0.5  # both keys sign callbacks
    stack.control("PUT", "keys/mode", body)
    stack.control("PUT", "config", {"faults": {"duplicate_notifications": COPIES - 1}})
    drill = Drill([], [])
    pay_wave(bff, stack, rid, 0, drill)
    figures = settle(bff, stack, drill)
    assert figures == {
        "orders": WAVE,
        "notifications": WAVE * COPIES,
        "rejected": 0,
        "fulfilled_exactly_once": WAVE,
    }
    serials = {a["serial"] for a in drill.attempts(stack)}
    public_key_serials = {s for s in serials if s.startswith("PUB_KEY_ID_")}
    if mode == "certificate":
        assert not public_key_serials
    elif mode == "migrating":
        assert public_key_serials
        assert serials - public_key_serials
    else:
        assert serials == public_key_serials


def test_certificate_rotation_during_a_storm_rejects_nothing(
    bff: OrderPayClient, stack: Stack, rid: str
) -> None:
    stack.control("PUT", "keys/mode", {"mode": "certificate"})
    stack.control("PUT", "config", {"faults": {"duplicate_notifications": COPIES - 1}})
    old = stack.control("GET", "keys")["certificates"][0]["serial_no"]
    drill = Drill([], [])
    successor = ""
    for wave, share in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):  # listed 10 days ahead, then the ramp
        successor = stack.control("POST", "keys/rotation", {"share": share})["rotation"]["successor"]
        pay_wave(bff, stack, rid, wave, drill)
    finished = stack.control("POST", "keys/rotation/finish")  # the old certificate expires
    assert [c["serial_no"] for c in finished["certificates"]] != [old]
    pay_wave(bff, stack, rid, 5, drill)
    figures = settle(bff, stack, drill)
    assert figures["rejected"] == 0
    assert figures["fulfilled_exactly_once"] == figures["orders"] == 6 * WAVE
    serials = Counter(a["serial"] for a in drill.attempts(stack))
    assert set(serials) == {old, successor}
    # One download of /v3/certificates when the successor's serial first arrived, whatever the storm.
    assert (
        metric(
            stack,
            "orderpay_provider_calls_total",
            account="default",
            operation="download_certificates",
            outcome="ok",
        )
        == 1
    )
    assert finished["certificates"][0]["serial_no"] == successor


def test_public_key_ramp_and_rollback_during_a_storm_reject_nothing(
    bff: OrderPayClient, stack: Stack, rid: str
) -> None:
    stack.control("PUT", "config", {"faults": {"duplicate_notifications": COPIES - 1}})
    drill = Drill([], [])
    for wave, share in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
        stack.control("PUT", "keys/mode", {"mode": "migrating", "share": share})
        pay_wave(bff, stack, rid, wave, drill)
    stack.control("PUT", "keys/mode", {"mode": "migrating", "share": 0.5})
    pay_wave(bff, stack, rid, 5, drill)
    assert stack.control("POST", "keys/migration/stop")["mode"] == "certificate"  # 停止更换
    pay_wave(bff, stack, rid, 6, drill)
    figures = settle(bff, stack, drill)
    assert figures["rejected"] == 0
    assert figures["fulfilled_exactly_once"] == figures["orders"] == 7 * WAVE
    kinds = Counter(
        "public_key" if a["serial"].startswith("PUB_KEY_ID_") else "certificate"
        for a in drill.attempts(stack)
    )
    assert kinds["public_key"] > 0
    assert kinds["certificate"] > 0
    for kind in ("public_key", "certificate"):
        assert metric(stack, "orderpay_wxpay_verifications_total", kind=kind, outcome="ok") >= kinds[kind]


def test_undecryptable_notification_is_refused_counted_and_logged(
    bff: OrderPayClient, stack: Stack, rid: str
) -> None:
    order = create(bff, f"keys-{rid}")
    stack.faults(order.out_trade_no, notify_wrong_apiv3_key=True)
    stack.pay(order.out_trade_no)

    def answered() -> list[dict[str, Any]]:
        return [a for a in stack.attempts() if a["out_trade_no"] == order.out_trade_no and a["status"]]

    wait_until(lambda: bool(answered()), 20, "first delivery answered")
    first = answered()[0]
    assert 400 <= first["status"] < 500
    metrics = httpx.get(stack.metrics_url, timeout=5).text
    assert 'orderpay_notifications_total{account="default",outcome="undecryptable"}' in metrics
    lines = [
        json.loads(x) for x in (stack.workdir / "server.log").read_text().splitlines() if x.startswith("{")
    ]
    line = next(x for x in lines if x.get("outcome") == "undecryptable" and x.get("out_trade_no") == "")
    assert line["level"] == "error"
    assert "apiv3_key" in line["action"]


def test_raw_body_traps_still_fulfil(bff: OrderPayClient, stack: Stack, rid: str) -> None:
    user = f"keys-{rid}"
    order = create(bff, user)
    stack.faults(order.out_trade_no, raw_body_traps=True)
    stack.pay(order.out_trade_no)
    final = bff.get_order(order.order_id, wait_ms=15_000)
    assert final.fulfilment == order_pb2.FULFILMENT_SUCCEEDED
    assert {a["status"] for a in stack.attempts() if a["out_trade_no"] == order.out_trade_no} == {204}
    assert membership_days(bff, user, final) == pytest.approx(PLAN_DAYS, abs=0.01)
