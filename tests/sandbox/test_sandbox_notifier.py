"""Delivery on WeChat's retry schedule (× time scale): N failures → N+1 attempts, a 2xx stops them,
a receiver that is down never stops the sandbox."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.app import RunningSandbox
from sandbox.config import RETRY_SCHEDULE_S
from sandbox.keys.bundle import Credentials
from sandbox.testing import MerchantCaller, NotificationReceiver, prepay_body, wait_until

JSAPI = "/v3/pay/transactions/jsapi"
MakeSandbox = Callable[..., RunningSandbox]


@pytest.fixture
def start(
    make_sandbox: MakeSandbox, make_caller: Callable[..., MerchantCaller]
) -> Callable[..., MerchantCaller]:
    """A sandbox with these settings, and a caller for it."""
    return lambda **settings: make_caller(make_sandbox(**settings))


def pay(caller: MerchantCaller, credentials: Credentials, out_trade_no: str, url: str) -> None:
    assert caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, url)).status == 200
    caller.control("POST", f"orders/{out_trade_no}/pay")


def settled_log(caller: MerchantCaller) -> list[dict[str, Any]]:
    """The attempt log once no delivery is in flight any more."""

    def idle() -> dict[str, Any] | None:
        log: dict[str, Any] = caller.control("GET", "notifications")
        return log if log["in_flight"] == 0 else None

    log = wait_until(idle)
    attempts: list[dict[str, Any]] = log["attempts"]
    return attempts


@pytest.mark.parametrize("failures", [0, 1, 3])
def test_n_failures_give_n_plus_one_attempts_on_the_scaled_schedule(
    start: Callable[..., MerchantCaller], credentials: Credentials, out_trade_no: str, failures: int
) -> None:
    scale = 0.01
    receiver = NotificationReceiver(answer=lambda _r, count: 500 if count <= failures else 204).start()
    try:
        caller = start(time_scale=scale)
        pay(caller, credentials, out_trade_no, receiver.url)
        attempts = settled_log(caller)
    finally:
        receiver.stop()
    assert [a["status"] for a in attempts] == [500] * failures + [204]
    assert [a["attempt"] for a in attempts] == list(range(1, failures + 2))
    expected = [0.0]
    for gap in RETRY_SCHEDULE_S[:failures]:
        expected.append(expected[-1] + gap * scale)
    assert [a["scheduled_offset_s"] for a in attempts] == pytest.approx(expected)
    for attempt, wanted in zip(attempts, expected, strict=True):
        assert wanted - 0.005 <= attempt["offset_s"] <= wanted + 0.5
    assert len(receiver.received) == failures + 1


def test_a_receiver_that_always_fails_gets_sixteen_attempts(
    start: Callable[..., MerchantCaller], credentials: Credentials, out_trade_no: str
) -> None:
    receiver = NotificationReceiver(answer=lambda _r, _c: 503).start()
    try:
        caller = start(time_scale=0.00002)  # the 24 h schedule in ~1.7 s
        pay(caller, credentials, out_trade_no, receiver.url)
        attempts = settled_log(caller)
    finally:
        receiver.stop()
    assert len(attempts) == 1 + len(RETRY_SCHEDULE_S) == 16
    assert {a["status"] for a in attempts} == {503}
    assert len({a["notification_id"] for a in attempts}) == 1  # every retry is the same notification


def test_a_200_with_fail_body_still_counts_as_delivered(
    start: Callable[..., MerchantCaller], credentials: Credentials, out_trade_no: str
) -> None:
    receiver = NotificationReceiver(answer=lambda _r, _c: 200).start()
    try:
        caller = start()
        pay(caller, credentials, out_trade_no, receiver.url)
        assert [a["status"] for a in settled_log(caller)] == [200]
    finally:
        receiver.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_receiver_that_is_down_does_not_stop_the_sandbox(
    start: Callable[..., MerchantCaller],
    credentials: Credentials,
    receiver: NotificationReceiver,
    out_trade_no: str,
) -> None:
    caller = start(time_scale=0.001)
    pay(caller, credentials, out_trade_no, f"http://127.0.0.1:{closed_port()}/notify")
    failed = wait_until(
        lambda: [a for a in caller.control("GET", "notifications")["attempts"] if a["error"]][2:] or None
    )
    assert all(a["status"] is None and "Connect" in a["error"] for a in failed)
    other = out_trade_no + "B"
    pay(caller, credentials, other, receiver.url)  # the sandbox still serves and delivers elsewhere
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    assert got.event_type == "TRANSACTION.SUCCESS"
    query = caller.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={credentials.mchid}")
    assert query.json()["trade_state"] == "SUCCESS"


def test_a_receiver_slower_than_the_timeout_counts_as_failed(
    start: Callable[..., MerchantCaller], credentials: Credentials, out_trade_no: str
) -> None:
    import threading

    release = threading.Event()

    def slow(_received: object, count: int) -> int:
        if count == 1:
            release.wait(timeout=5)  # holds only the receiver's own loop thread
        return 204

    receiver = NotificationReceiver(answer=slow).start()
    try:
        caller = start(notify_timeout_s=0.2, time_scale=0.001)
        pay(caller, credentials, out_trade_no, receiver.url)
        first = wait_until(
            lambda: [a for a in caller.control("GET", "notifications")["attempts"] if a["error"]]
        )
        release.set()
        attempts = settled_log(caller)
    finally:
        receiver.stop()
    assert "Timeout" in first[0]["error"]
    assert attempts[-1]["status"] == 204
