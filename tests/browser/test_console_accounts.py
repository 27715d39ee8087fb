"""The console with several merchant accounts (issue 18 §5), in headless Chromium: the orders page,
Needs attention and the notifications page filter by account and show each row's account; a
reconciliation exception links to its own account's order, never to another account's order of the same
number."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, Page

from server.adapters.recon_tables import ReconExceptionRow
from server.adapters.tables import NotificationRow
from server.adapters.times import to_db_time
from server.domain.order import CreateOrder, Order
from server.service.context import Caller
from tests.browser.test_console import sign_in
from tests.support.console_stack import LiveStack, live_stack

pytestmark = pytest.mark.browser
BFF = Caller("bff", "test")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("console-accounts"), accounts=True) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    tab = context.new_page()
    yield tab
    context.close()


def order(live: LiveStack, user: str, product: str, account: str) -> Order:
    cmd = CreateOrder(secrets.token_hex(6), user, product, 1, merchant=account)
    return live.stack.app.orders.create_order(cmd, BFF).order


def test_the_orders_page_filters_by_account_and_shows_it(page: Page, live: LiveStack) -> None:
    user = "u-" + secrets.token_hex(4)
    pk = order(live, user, "vip-month", "direct-pk")
    sub = order(live, user, "vip-year", "sp-sub-a")
    sign_in(page, live)
    page.wait_for_selector("text=Needs attention")
    page.goto(f"{live.console_url}/orders?user={user}")
    table = page.inner_text("main table")
    assert pk.order_id in table
    assert sub.order_id in table
    options = page.locator("#order-search select[name=account] option").all_inner_texts()
    assert options == ["any", "direct-cert", "direct-pk", "sp", "sp-sub-a", "sp-sub-b"]

    page.select_option("#order-search select[name=account]", "sp-sub-a")
    page.click("#order-search button[type=submit]")
    page.wait_for_url("**account=sp-sub-a**")
    rows = page.locator("main table tbody tr").all_inner_texts()
    assert len(rows) == 1
    assert sub.order_id in rows[0]
    assert "sp-sub-a" in rows[0]  # the account column
    assert page.locator("#order-search select[name=account]").input_value() == "sp-sub-a"


def test_needs_attention_filters_reconciliation_exceptions_by_account(page: Page, live: LiveStack) -> None:
    user = "u-" + secrets.token_hex(4)
    mine = order(live, user, "vip-quarter", "direct-pk")
    now = to_db_time(datetime.now(UTC))
    with live.stack.app.db.connection_context():
        for account, kind in (("direct-pk", "MISSING_REMOTE"), ("direct-cert", "MISSING_LOCAL")):
            ReconExceptionRow.insert(
                bill_date="2026-11-30", account=account, kind=kind, out_trade_no=mine.out_trade_no,
                status="OPEN", detail="", created_at=now, updated_at=now,
            ).execute()  # fmt: skip
    sign_in(page, live)
    page.wait_for_selector("text=Needs attention")
    recon = page.locator("#recon tbody tr", has_text=mine.out_trade_no)
    assert recon.count() == 2
    by_account = {row.split("\t")[2].strip(): row for row in recon.all_inner_texts()}
    assert set(by_account) == {"direct-pk", "direct-cert"}
    # The number is direct-pk's order: only direct-pk's exception links to it.
    assert page.locator(f"#recon a[href='/orders/{mine.order_id}']").count() == 1

    page.select_option("#attention-account select[name=account]", "direct-cert")
    page.click("#attention-account button[type=submit]")
    page.wait_for_url("**account=direct-cert**")
    rows = page.locator("#recon tbody tr", has_text=mine.out_trade_no).all_inner_texts()
    assert len(rows) == 1
    assert "MISSING_LOCAL" in rows[0]
    assert "direct-cert" in rows[0]
    assert "direct-cert" in page.inner_text("h1")


def test_the_notifications_page_filters_by_account_and_shows_it(page: Page, live: LiveStack) -> None:
    tag = secrets.token_hex(4)
    now = to_db_time(datetime.now(UTC))
    with live.stack.app.db.connection_context():
        for account in ("direct-pk", "sp-sub-b"):
            NotificationRow.insert(
                notification_id=f"n-{tag}-{account}", event_type="TRANSACTION.SUCCESS", headers="{}",
                body="{}", status="FAILED", outcome="bad_signature", attempts=1, received_at=now,
                account=account,
            ).execute()  # fmt: skip
    sign_in(page, live)
    page.wait_for_selector("text=Needs attention")
    page.goto(f"{live.console_url}/notifications?failing=1")
    rows = page.locator("main table tbody tr", has_text=f"n-{tag}-").all_inner_texts()
    by_account = {row.split("\t")[3].strip() for row in rows}  # the account column
    assert by_account == {"direct-pk", "sp-sub-b"}

    page.select_option("#notifications-account select[name=account]", "sp-sub-b")
    page.click("#notifications-account button[type=submit]")
    page.wait_for_url("**account=sp-sub-b**")
    assert "failing=1" in page.url  # the tab chosen stays
    rows = page.locator("main table tbody tr", has_text=f"n-{tag}-").all_inner_texts()
    assert len(rows) == 1
    assert f"n-{tag}-sp-sub-b" in rows[0]
    assert "sp-sub-b" in page.inner_text("h1")
    assert page.locator("#notifications-account select[name=account]").input_value() == "sp-sub-b"
