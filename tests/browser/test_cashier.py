"""The cashier page driven by headless Chromium: open a NATIVE order's page from its code_url, click
Pay, and the TRANSACTION.SUCCESS notification reaches the merchant's receiver."""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from sandbox.app import RunningSandbox, run_in_thread
from sandbox.config import SandboxConfig
from sandbox.keys import init_bundle, load_credentials
from sandbox.testing import MerchantCaller, NotificationReceiver, prepay_body

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip("Debian's chromium is not installed (`make chromium` installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    init_bundle(tmp_path)
    running = run_in_thread(SandboxConfig(credentials=load_credentials(tmp_path)))
    yield running
    running.stop()


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    rx = NotificationReceiver().start()
    yield rx
    rx.stop()


def native_order(sandbox: RunningSandbox, receiver: NotificationReceiver, out_trade_no: str) -> str:
    """Create a NATIVE order; return the cashier URL its code_url stands for."""
    caller = MerchantCaller(sandbox.base_url, sandbox.sandbox.credentials)
    try:
        body = prepay_body(sandbox.sandbox.credentials, out_trade_no, receiver.url, amount={"total": 1990})
        del body["payer"]
        answer = caller.call("POST", "/v3/pay/transactions/native", body)
    finally:
        caller.close()
    code_url: str = answer.json()["code_url"]
    token = code_url.removeprefix("weixin://wxpay/bizpayurl?pr=")
    return f"{sandbox.base_url}/sandbox/cashier/{token}"


def test_clicking_pay_fires_the_payment_notification(
    browser: Browser, sandbox: RunningSandbox, receiver: NotificationReceiver
) -> None:
    out_trade_no = "WEB" + secrets.token_hex(8)
    page = browser.new_page()
    try:
        page.goto(native_order(sandbox, receiver, out_trade_no))
        assert page.locator("#amount").inner_text() == "¥19.90"
        assert page.locator("#description").inner_text() == "VIP 月卡"
        assert sandbox.sandbox.credentials.mchid in page.locator("#merchant").inner_text()
        page.click("#pay")
        page.wait_for_selector("text=支付成功")
    finally:
        page.close()
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    envelope = json.loads(got.body)
    assert envelope["event_type"] == "TRANSACTION.SUCCESS"


def test_clicking_cancel_leaves_the_order_unpaid(
    browser: Browser, sandbox: RunningSandbox, receiver: NotificationReceiver
) -> None:
    out_trade_no = "WEB" + secrets.token_hex(8)
    page = browser.new_page()
    try:
        page.goto(native_order(sandbox, receiver, out_trade_no))
        page.click("#cancel")
        page.wait_for_selector("text=Cancelled")
    finally:
        page.close()
    assert sandbox.sandbox.backend.trade(out_trade_no).trade_state == "NOTPAY"
    assert receiver.received == []
