"""Every item in "Needs attention" can be acted on in the console, as a person sees it in Chromium: an
ABNORMAL refund is sent another way from its order page, a reconciliation exception is resolved from the
attention page, a HELD late payment whose automatic refund settled is out of the queue with no
"Refund ¥0.00" button. The attention page and each order page are captured at 1280 and 390 px into
.artifacts/console-actions/ (git-ignored); at 390 px every action is on screen without sideways scrolling."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from server.domain.order import Fulfilment, OrderStatus
from server.domain.refund import RefundStatus
from server.service.context import Caller
from tests.support.browser import ARTIFACTS, capture
from tests.support.builders import a_paid_order, a_refund
from tests.support.console_stack import ADMIN_TOKEN, LiveStack, live_stack

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "console-actions"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("console-actions")) as running:
        yield running


@pytest.fixture
def page(browser: Browser, live: LiveStack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    tab = context.new_page()
    tab.goto(f"{live.console_url}/sign-in")
    tab.fill("input[name=token]", ADMIN_TOKEN)
    tab.click("#sign-in button[type=submit]")
    tab.wait_for_selector("text=Needs attention")
    yield tab
    context.close()


def on_screen_at_phone_width(page: Page, selector: str) -> None:
    """At 390 px the action is within the viewport as laid out, with no sideways scroll needed."""
    page.set_viewport_size({"width": 390, "height": 900})
    try:
        box = page.locator(selector).bounding_box()
        assert box is not None, f"{selector} is not displayed at 390 px"
        assert box["x"] >= 0, (selector, box)
        assert box["x"] + box["width"] <= 390, (selector, box)
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def act(page: Page, form: str, reason: str) -> str:
    page.fill(f"{form} textarea[name=reason]", reason)
    page.check(f"{form} input[name=confirm]")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("#result")
    return page.inner_text("#result")


def test_an_abnormal_refund_is_sent_to_the_merchant_account_from_its_order_page(
    page: Page, live: LiveStack
) -> None:
    order = live.paid_order()
    no = live.abnormal_refund(order)
    page.goto(f"{live.console_url}/attention")
    page.click(f"#refunds a:has-text('{order.order_id}')")
    actions = page.inner_text(".actions")
    assert "Nothing to do by hand" not in actions
    assert f"Refund {no} of ¥18.00 is ABNORMAL" in actions
    capture(page, SHOTS, "order-abnormal")

    page.check(f"#abnormal-{no} input[value=MERCHANT_BANK_CARD]")
    result = act(page, f"#abnormal-{no}", "card closed; we pay the customer by bank transfer")
    assert page.inner_text("#outcome") == "done"
    assert f"refund {no} of ¥18.00 is" in result
    capture(page, SHOTS, "result-abnormal")
    refund = live.stack.app.payments.refunds.get_refund(no, False, Caller("admin", "test"))  # type: ignore[union-attr]
    assert refund.status is not RefundStatus.ABNORMAL


def test_a_recon_exception_is_resolved_from_the_attention_page(page: Page, live: LiveStack) -> None:
    order = live.paid_order()
    exception_id = live.recon_exception(order)
    page.goto(f"{live.console_url}/orders/{order.order_id}")
    assert f"Resolve exception #{exception_id}" in page.inner_text(".actions")
    capture(page, SHOTS, "order-recon")

    page.goto(f"{live.console_url}/attention")
    row = page.locator(f"#recon tr:has(#recon-{exception_id})")
    assert "¥18.00" in row.inner_text()
    assert "¥17.99" in row.inner_text()
    row.locator("summary").click()
    capture(page, SHOTS, "attention")
    result = act(page, f"#recon-{exception_id}", "WeChat support corrected the bill")
    assert f"exception #{exception_id} AMOUNT_MISMATCH resolved" in result
    page.goto(f"{live.console_url}/attention")
    assert page.locator(f"#recon-{exception_id}").count() == 0


def test_a_held_order_shows_refund_and_accept(page: Page, live: LiveStack) -> None:
    order = live.held_order()
    page.goto(f"{live.console_url}/orders/{order.order_id}")
    actions = page.inner_text(".actions")
    assert "Refund ¥17.99" in actions
    assert "Accept and fulfil" in actions
    assert "AMOUNT_MISMATCH: paid ¥17.99, due ¥18.00" in page.inner_text("main")
    capture(page, SHOTS, "order-held")


def test_a_late_payment_refunded_in_full_leaves_the_queue_without_a_zero_refund(
    page: Page, live: LiveStack
) -> None:
    app = live.stack.app
    late = a_paid_order(
        app.clock(), OrderStatus.CLOSED, fulfilment=Fulfilment.HELD, refunded_fee=1800,
        fulfilment_reason="PAID_AFTER_CLOSE: paid ¥18.00, due ¥18.00",
    )  # fmt: skip
    with app.uow() as uow:
        uow.orders.insert(late)
        uow.refunds.insert(a_refund(late, RefundStatus.SUCCESS, late.paid_fee, "PC"), due_at=late.created_at)
    page.goto(f"{live.console_url}/attention")
    assert late.order_id not in page.inner_text("#held")
    page.goto(f"{live.console_url}/orders/{late.order_id}")
    actions = page.inner_text(".actions")
    assert "Refund ¥" not in actions
    assert "nothing to decide by hand" in actions
    capture(page, SHOTS, "order-late-refunded")


def test_the_attention_page_with_one_of_each_and_its_way_out(page: Page, live: LiveStack) -> None:
    held = live.held_order()
    abnormal_order = live.paid_order()
    no = live.abnormal_refund(abnormal_order)
    exception_id = live.recon_exception(live.paid_order())
    page.goto(f"{live.console_url}/attention")
    assert held.order_id in page.inner_text("#held")
    link = page.locator(f"#refunds a[href='/orders/{abnormal_order.order_id}#abnormal-{no}']")
    assert link.inner_text().startswith("Send it another way")
    assert page.locator(f"#recon-{exception_id}").count() == 1
    capture(page, SHOTS, "attention-full")
    on_screen_at_phone_width(page, f"#recon tr:has(#recon-{exception_id}) summary")  # Resolve…
    on_screen_at_phone_width(page, f"#refunds a[href='/orders/{abnormal_order.order_id}#abnormal-{no}']")
    link.click()
    assert page.locator(f"#abnormal-{no}").is_visible()
