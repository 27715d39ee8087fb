"""Each fault knob, shown by its effect; globally and per order; reproducible from a seed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox.app import RunningSandbox
from sandbox.config import Faults
from sandbox.keys import signing
from sandbox.keys.bundle import Credentials
from sandbox.testing import (
    MerchantCaller,
    NotificationReceiver,
    Received,
    key_for_serial,
    prepay_body,
    wait_until,
)

JSAPI = "/v3/pay/transactions/jsapi"


@pytest.fixture
def start(
    make_sandbox: Callable[..., RunningSandbox], make_caller: Callable[..., MerchantCaller]
) -> Callable[..., MerchantCaller]:
    """A sandbox with these faults/settings, and a caller for it."""
    return lambda faults=None, caller_options=None, **settings: make_caller(
        make_sandbox(faults=faults, **settings), **(caller_options or {})
    )


def prepay(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str, url: str
) -> httpx.Response | Any:
    return caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, url))


def pay(caller: MerchantCaller, credentials: Credentials, out_trade_no: str, url: str) -> None:
    assert prepay(caller, credentials, out_trade_no, url).status == 200
    caller.control("POST", f"orders/{out_trade_no}/pay")


def decrypt(received: Received, credentials: Credentials) -> dict[str, Any]:
    resource = json.loads(received.body)["resource"]
    plain = signing.decrypt_resource(
        credentials.apiv3_key, resource["nonce"], resource["associated_data"], resource["ciphertext"]
    )
    decoded: dict[str, Any] = json.loads(plain)
    return decoded


def signature_ok(received: Received, credentials: Credentials) -> bool:
    h = received.headers
    message = signing.response_message(h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"], received.body)
    return signing.rsa_verify(
        key_for_serial(credentials, h["Wechatpay-Serial"]), message, h["Wechatpay-Signature"]
    )


def test_duplicates_concurrent(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller = start(Faults(duplicate_notifications=2))
    pay(caller, credentials, out_trade_no, receiver.url)
    got = receiver.wait_for(lambda r: len(r) == 3)
    assert len({json.loads(r.body)["id"] for r in got}) == 1  # the same notification three times
    assert max(r.at for r in got) - min(r.at for r in got) < 0.5


def test_duplicates_spaced(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller = start(Faults(duplicate_notifications=1, duplicate_spacing_s=1.0), time_scale=0.2)
    pay(caller, credentials, out_trade_no, receiver.url)
    first, second = receiver.wait_for(lambda r: len(r) == 2)
    assert second.at - first.at >= 0.15  # spaced ~0.2 s (1 s × scale 0.2), minus delivery jitter
    assert json.loads(first.body)["id"] == json.loads(second.body)["id"]


def test_notify_delay(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller = start(Faults(notify_delay_s=30), time_scale=0.01)
    began = time.monotonic()
    pay(caller, credentials, out_trade_no, receiver.url)
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    assert got.at - began >= 0.3


def test_drop(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller = start(Faults(notify_drop_rate=1.0))
    pay(caller, credentials, out_trade_no, receiver.url)
    log = wait_until(lambda: caller.control("GET", "notifications")["attempts"])
    assert [a["kind"] for a in log] == ["dropped"]
    assert receiver.received == []


def dropped_pattern(caller: MerchantCaller, credentials: Credentials, url: str) -> list[bool]:
    for index in range(12):
        pay(caller, credentials, f"SEED{index:06d}", url)

    def all_twelve() -> list[dict[str, Any]] | None:
        attempts: list[dict[str, Any]] = caller.control("GET", "notifications")["attempts"]
        return attempts if len(attempts) >= 12 else None

    log = wait_until(all_twelve)
    return [a["kind"] == "dropped" for a in sorted(log, key=lambda a: a["out_trade_no"])]


def test_rate_faults_are_reproducible_from_the_seed(
    start: Any, credentials: Credentials, receiver: NotificationReceiver
) -> None:
    first = dropped_pattern(start(Faults(notify_drop_rate=0.5), seed=42), credentials, receiver.url)
    second = dropped_pattern(start(Faults(notify_drop_rate=0.5), seed=42), credentials, receiver.url)
    assert first == second
    assert True in first
    assert False in first


def test_refund_before_payment(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller = start(Faults(refund_before_payment=True))
    pay(caller, credentials, out_trade_no, receiver.url)
    refund = {
        "out_trade_no": out_trade_no,
        "out_refund_no": "R" + out_trade_no,
        "amount": {"refund": 100, "total": 100},
    }
    assert caller.call("POST", "/v3/refund/domestic/refunds", refund).status == 200
    got = receiver.wait_for(lambda r: len(r) == 2)
    assert [r.event_type for r in got] == ["REFUND.SUCCESS", "TRANSACTION.SUCCESS"]


def test_signtest_probe_comes_first_and_fails_verification(
    start: Any, credentials: Credentials, out_trade_no: str
) -> None:
    receiver = NotificationReceiver(answer=lambda r, _c: 204 if signature_ok(r, credentials) else 401).start()
    try:
        caller = start(Faults(signtest_probe=True))
        pay(caller, credentials, out_trade_no, receiver.url)
        probe, real = receiver.wait_for(lambda r: len(r) == 2)
    finally:
        receiver.stop()
    assert probe.headers["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
    assert not signature_ok(probe, credentials)
    assert signature_ok(real, credentials)
    kinds = [(a["kind"], a["status"]) for a in caller.control("GET", "notifications")["attempts"]]
    assert kinds == [("signtest", 401), ("delivery", 204)]


def test_stale_timestamp(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller = start(Faults(stale_timestamp_s=600))
    pay(caller, credentials, out_trade_no, receiver.url)
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    assert time.time() - int(got.headers["Wechatpay-Timestamp"]) >= 599
    assert signature_ok(got, credentials)  # validly signed, only old


def test_wrong_amount(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller = start(Faults(wrong_amount_delta=1))
    pay(caller, credentials, out_trade_no, receiver.url)
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    assert decrypt(got, credentials)["amount"]["total"] == 101
    query = caller.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={credentials.mchid}")
    assert query.json()["amount"]["total"] == 100  # only the notification lies


def test_notification_before_prepay_response(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller = start(Faults(notify_before_prepay_response=True))
    answer = prepay(caller, credentials, out_trade_no, receiver.url)
    assert answer.status == 200
    assert [r.event_type for r in receiver.received] == ["TRANSACTION.SUCCESS"]  # already there


def test_api_latency_with_jitter(start: Any, credentials: Credentials) -> None:
    caller = start(Faults(api_latency_ms=200, api_latency_jitter_ms=50), seed=1)
    durations = []
    for _ in range(3):
        began = time.monotonic()
        assert caller.call("GET", "/v3/certificates").status == 200
        durations.append(time.monotonic() - began)
    assert all(0.15 <= d < 1.0 for d in durations)


@pytest.mark.parametrize(
    ("code", "status"), [("SYSTEM_ERROR", 500), ("FREQUENCY_LIMITED", 429), ("BANKERROR", 500)]
)
def test_api_errors(start: Any, credentials: Credentials, out_trade_no: str, code: str, status: int) -> None:
    caller = start(Faults(api_error_rate=1.0, api_error_code=code))
    answer = prepay(caller, credentials, out_trade_no, "https://m.example.com/n")
    assert (answer.status, answer.json()["code"]) == (status, code)
    assert "wechatpay-signature" in answer.headers
    with pytest.raises(httpx.HTTPStatusError):  # nothing was created
        caller.control("GET", f"orders/{out_trade_no}")


def test_api_error_after_processing_still_takes_effect(
    start: Any, credentials: Credentials, out_trade_no: str
) -> None:
    caller = start(Faults(api_error_rate=1.0, api_error_after_processing=True))
    answer = prepay(caller, credentials, out_trade_no, "https://m.example.com/n")
    assert (answer.status, answer.json()["code"]) == (500, "SYSTEM_ERROR")
    assert caller.control("GET", f"orders/{out_trade_no}")["trade_state"] == "NOTPAY"  # it was created


def test_refund_before_payment_hold_is_capped(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller = start(Faults(refund_before_payment=True), time_scale=0.005)  # cap: 60 s × 0.005 = 0.3 s
    began = time.monotonic()
    pay(caller, credentials, out_trade_no, receiver.url)
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    assert got.event_type == "TRANSACTION.SUCCESS"
    assert got.at - began >= 0.29


def test_hung_requests(start: Any, credentials: Credentials) -> None:
    caller = start(Faults(hang_rate=1.0, hang_timeout_s=30), caller_options={"timeout": 0.3})
    with pytest.raises(httpx.ReadTimeout):
        caller.call("GET", "/v3/certificates")


def test_faults_per_order(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller = start()
    faulty, healthy = out_trade_no + "F", out_trade_no + "H"
    caller.control(
        "POST", f"orders/{faulty}/faults", {"api_error_rate": 1.0, "api_error_code": "FREQUENCY_LIMITED"}
    )
    assert prepay(caller, credentials, faulty, receiver.url).status == 429
    assert prepay(caller, credentials, healthy, receiver.url).status == 200
    caller.control("POST", f"orders/{healthy}/faults", {"duplicate_notifications": 1})
    caller.control("POST", f"orders/{healthy}/pay")
    receiver.wait_for(lambda r: len(r) == 2)
    assert caller.control("GET", "state")["order_faults"][faulty]["api_error_rate"] == 1.0


def test_unknown_fault_knob_is_refused(start: Any) -> None:
    caller = start()
    with pytest.raises(httpx.HTTPStatusError, match="400"):
        caller.control("POST", "orders/T1234567/faults", {"make_it_fail": True})
