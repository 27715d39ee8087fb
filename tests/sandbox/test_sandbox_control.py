"""The control API (`/sandbox/v1/`), payment simulation (auto-pay, refund settling) and the cashier
page over plain HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox.app import RunningSandbox
from sandbox.keys import signing
from sandbox.keys.bundle import Credentials
from sandbox.testing import MerchantCaller, NotificationReceiver, Received, prepay_body, wait_until

JSAPI = "/v3/pay/transactions/jsapi"
REFUNDS = "/v3/refund/domestic/refunds"


@pytest.fixture
def start(
    make_sandbox: Callable[..., RunningSandbox], make_caller: Callable[..., MerchantCaller]
) -> Callable[..., MerchantCaller]:
    return lambda **settings: make_caller(make_sandbox(**settings))


def refund_of(out_trade_no: str, refund: int = 40, **extra: Any) -> dict[str, Any]:
    return {
        "out_trade_no": out_trade_no,
        "out_refund_no": "R" + out_trade_no,
        "amount": {"refund": refund, "total": 100, "currency": "CNY"},
        **extra,
    }


def resource(received: Received, credentials: Credentials) -> dict[str, Any]:
    res = json.loads(received.body)["resource"]
    plain = signing.decrypt_resource(
        credentials.apiv3_key, res["nonce"], res["associated_data"], res["ciphertext"]
    )
    decoded: dict[str, Any] = json.loads(plain)
    return decoded


def test_reset_forgets_orders_and_notifications(
    caller: MerchantCaller, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, receiver.url))
    caller.control("POST", f"orders/{out_trade_no}/pay")
    receiver.wait_for(lambda r: len(r) == 1)
    assert caller.control("POST", "reset") == {"reset": True}
    state = caller.control("GET", "state")
    assert (state["trades"], state["refunds"], state["notification_attempts"]) == ([], [], 0)
    answer = caller.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={credentials.mchid}")
    assert answer.status == 404


def test_config_partial_update_and_validation(caller: MerchantCaller) -> None:
    before = caller.control("GET", "config")
    after = caller.control("PUT", "config", {"time_scale": 0.5, "faults": {"notify_drop_rate": 0.25}})
    assert (after["time_scale"], after["faults"]["notify_drop_rate"]) == (0.5, 0.25)
    assert after["notify_sign_mode"] == before["notify_sign_mode"]
    for bad in (
        {"nope": 1},
        {"notify_sign_mode": "hmac"},
        {"faults": {"notify_drop_rate": "x"}},
        {"credentials": {}},
    ):
        with pytest.raises(httpx.HTTPStatusError, match="400"):
            caller.control("PUT", "config", bad)
    caller.control("POST", "reset")
    assert caller.control("GET", "config") == before


def test_notify_sign_mode_cert_is_switchable(
    caller: MerchantCaller, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller.control("PUT", "config", {"notify_sign_mode": "cert"})
    caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, receiver.url))
    caller.control("POST", f"orders/{out_trade_no}/pay")
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    assert got.headers["Wechatpay-Serial"] == credentials.platform_cert_serial_no


def test_paying_twice_sends_one_notification(
    caller: MerchantCaller, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, receiver.url))
    first = caller.control("POST", f"orders/{out_trade_no}/pay", {"payer_openid": "oCustomPayer"})
    second = caller.control("POST", f"orders/{out_trade_no}/pay")
    assert first["transaction_id"] == second["transaction_id"]
    assert first["payer"] == {"openid": "oCustomPayer"}
    log = wait_until(
        lambda: (n := caller.control("GET", "notifications"))["in_flight"] == 0 and n["attempts"]
    )
    assert [a["status"] for a in log] == [204]


@pytest.mark.parametrize("status", ["SUCCESS", "ABNORMAL", "CLOSED"])
def test_refund_settled_by_control_call(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str, status: str
) -> None:
    caller = start(refund_settle_delay_s=None)
    caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, receiver.url))
    caller.control("POST", f"orders/{out_trade_no}/pay")
    refund_url = receiver.url.replace("/notify", "/refund-notify")
    assert (
        caller.call("POST", REFUNDS, refund_of(out_trade_no, notify_url=refund_url)).json()["status"]
        == "PROCESSING"
    )
    settled = caller.control("POST", f"refunds/R{out_trade_no}/settle", {"status": status})
    assert settled["status"] == status
    assert ("success_time" in settled) == (status == "SUCCESS")
    got = receiver.wait_for(lambda r: len(r) == 2)[1]
    assert got.event_type == f"REFUND.{status}"
    assert resource(got, credentials)["refund_status"] == status
    attempts = caller.control("GET", "notifications")["attempts"]
    assert attempts[-1]["url"] == refund_url  # the refund's own notify_url wins
    assert attempts[-1]["out_refund_no"] == "R" + out_trade_no
    query = caller.call("GET", f"{REFUNDS}/R{out_trade_no}")
    assert query.json()["status"] == status


def test_a_closed_refund_frees_its_amount(start: Any, credentials: Credentials, out_trade_no: str) -> None:
    caller = start(refund_settle_delay_s=None)
    caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, "https://m.example.com/n"))
    caller.control("POST", f"orders/{out_trade_no}/pay")
    caller.call("POST", REFUNDS, refund_of(out_trade_no, refund=100))
    caller.control("POST", f"refunds/R{out_trade_no}/settle", {"status": "CLOSED"})
    again = {**refund_of(out_trade_no, refund=100), "out_refund_no": "S" + out_trade_no}
    assert caller.call("POST", REFUNDS, again).status == 200


def test_auto_pay_pays_every_prepay(
    start: Any, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller = start(auto_pay_delay_s=0.05)
    caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, receiver.url))
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    assert resource(got, credentials)["out_trade_no"] == out_trade_no


def test_resend_delivers_the_same_notification_again(
    caller: MerchantCaller, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, receiver.url))
    caller.control("POST", f"orders/{out_trade_no}/pay")
    (first,) = receiver.wait_for(lambda r: len(r) == 1)
    notification_id = json.loads(first.body)["id"]
    assert caller.control("POST", f"notifications/{notification_id}/resend") == {"resent": notification_id}
    second = receiver.wait_for(lambda r: len(r) == 2)[1]
    assert json.loads(second.body)["id"] == notification_id
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        caller.control("POST", "notifications/nope/resend")


def test_order_view_and_unknown_order(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, "https://m.example.com/n"))
    view = caller.control("GET", f"orders/{out_trade_no}")
    assert (view["trade_state"], view["channel"], view["description"]) == ("NOTPAY", "JSAPI", "VIP 月卡")
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        caller.control("GET", "orders/NOSUCH123")


def test_h5_url_opens_the_cashier_and_pay_settles_the_order(
    caller: MerchantCaller, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    body = prepay_body(
        credentials,
        out_trade_no,
        receiver.url,
        scene_info={"payer_client_ip": "1.2.3.4", "h5_info": {"type": "iOS"}},
    )
    del body["payer"]
    h5_url = caller.call("POST", "/v3/pay/transactions/h5", body).json()["h5_url"]
    page = httpx.get(h5_url)
    assert page.status_code == 200
    assert "¥1.00" in page.text
    assert out_trade_no in page.text
    action = re.search(r'action="([^"]+/pay)"', page.text)
    assert action is not None
    paid = httpx.post(caller.base_url + action.group(1), follow_redirects=True)
    # Post-redirect-get: 303 back to the page itself, which now says paid, its buttons disabled.
    assert [(r.status_code, r.headers["location"]) for r in paid.history] == [(303, h5_url.split("?")[0])]
    assert "支付成功" in paid.text
    assert len(re.findall(r"<button[^>]* disabled>", paid.text)) == 2
    assert receiver.wait_for(lambda r: len(r) == 1)[0].event_type == "TRANSACTION.SUCCESS"


def test_cashier_escapes_merchant_text(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    body = prepay_body(credentials, out_trade_no, "https://m.example.com/n", description="<script>x</script>")
    caller.call("POST", JSAPI, body)
    token = caller.control("GET", f"orders/{out_trade_no}")["cashier_token"]
    page = httpx.get(f"{caller.base_url}/sandbox/cashier/{token}").text
    assert "<script>x" not in page
    assert "&lt;script&gt;x" in page
    assert httpx.get(f"{caller.base_url}/sandbox/cashier/unknown-token").status_code == 404
    index = httpx.get(f"{caller.base_url}/").text  # the index lists the payment, escaped too
    assert "<script>x" not in index
    assert "&lt;script&gt;x" in index


def test_cashier_cancel_and_late_pay_redirect_back_to_the_page(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, "https://m.example.com/n"))
    token = caller.control("GET", f"orders/{out_trade_no}")["cashier_token"]
    page = f"{caller.base_url}/sandbox/cashier/{token}"

    cancelled = httpx.post(f"{page}/cancel")
    assert (cancelled.status_code, cancelled.headers["location"]) == (303, f"{page}?note=cancelled")
    assert "已取消支付 Cancelled" in httpx.get(cancelled.headers["location"]).text

    caller.call(
        "POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close", {"mchid": credentials.mchid}
    )
    late = httpx.post(f"{page}/pay", follow_redirects=True)
    assert late.history[0].status_code == 303
    assert 'data-state="closed"' in late.text
    assert "订单已关闭 Closed" in late.text
    assert len(re.findall(r"<button[^>]* disabled>", late.text)) == 2
    assert caller.control("GET", f"orders/{out_trade_no}")["trade_state"] == "CLOSED"


def test_an_int_for_a_float_knob_does_not_narrow_later_updates(caller: MerchantCaller) -> None:
    assert (
        caller.control("PUT", "config", {"faults": {"api_latency_ms": 30}})["faults"]["api_latency_ms"]
        == 30.0
    )
    after = caller.control("PUT", "config", {"faults": {"api_latency_ms": 0.5}, "time_scale": 2})
    assert (after["faults"]["api_latency_ms"], after["time_scale"]) == (0.5, 2.0)
