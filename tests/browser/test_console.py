"""The operations console in headless Chromium, over the whole stack in one process: sign in, find a
HELD order from Needs attention, refund it with a reason and see the refund and the audit entry on its
timeline; replay a stored notification twice and see nothing change; a bff token cannot sign in; a form
without its CSRF token is refused. Every page is captured at 1280 px and 390 px into .artifacts/console/
(git-ignored) and checked for missing-glyph boxes and for overflowing the phone's width."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from server.domain.order import Fulfilment, OrderStatus
from tests.support.browser import ARTIFACTS, GLYPH_CHECK, WIDTHS, capture
from tests.support.console_stack import ADMIN_TOKEN, BFF_TOKEN, LiveStack, live_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "console"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Page, live: LiveStack, token: str = ADMIN_TOKEN) -> None:
    page.goto(f"{live.console_url}/sign-in")
    page.fill("input[name=token]", token)
    page.click("#sign-in button[type=submit]")


def act(page: Page, form: str, reason: str) -> None:
    """Fill the action form's reason, tick the confirmation, submit, and wait for the result page."""
    page.fill(f"{form} textarea[name=reason]", reason)
    page.check(f"{form} input[name=confirm]")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("#result")


def test_find_a_held_order_refund_it_and_see_the_refund_and_the_audit_entry(
    page: Page, live: LiveStack
) -> None:
    order = live.held_order()
    sign_in(page, live)
    page.wait_for_selector("text=Needs attention")
    page.click(f"#held a:has-text('{order.order_id}')")
    page.wait_for_selector(f"#out-trade-no:has-text('{order.out_trade_no}')")
    assert "AMOUNT_MISMATCH" in page.inner_text("main")

    act(page, "#refund-held", "paid 1 fen short; customer asked for the money back")
    assert page.inner_text("#outcome") == "done"
    assert f"OPS{order.order_id}" in page.inner_text("#result")

    # The sandbox settles the refund and notifies; the order ends REFUNDED.
    wait_until(lambda: live.order(order.order_id).status is OrderStatus.REFUNDED, 20, "the refund to settle")
    page.click("#back")
    timeline = page.inner_text("#timeline")
    assert f"refund OPS{order.order_id}" in timeline
    assert f"OPS{order.order_id}:SUCCESS" in timeline  # the settlement's audit row
    assert "operation: HELD → REFUND" in timeline
    assert "paid 1 fen short; customer asked for the money back" in timeline
    assert "by admin@console:" in timeline
    assert "request console-" in timeline
    assert "Nothing to do by hand" in page.inner_text(".actions")


def test_replaying_a_stored_notification_changes_nothing_the_second_time(page: Page, live: LiveStack) -> None:
    order = live.held_order()
    story = live.stack.app.admin.order_story(order.order_id)
    (note,) = [n for n in story.notifications if n.event_type == "TRANSACTION.SUCCESS"]
    sign_in(page, live)
    outcomes = []
    states = []
    for attempt in (1, 2):
        page.goto(f"{live.console_url}/notifications")
        page.click(f"#replay-{note.notification_id} >> xpath=.. >> summary")
        act(page, f"#replay-{note.notification_id}", f"replay {attempt}")
        outcomes.append(page.inner_text("#outcome"))
        current = live.order(order.order_id)
        states.append((current.status, current.fulfilment, current.version, current.paid_fee))
    assert outcomes == ["duplicate", "duplicate"]
    assert states[0] == states[1] == (OrderStatus.PAID, Fulfilment.HELD, order.version, order.paid_fee)


def test_a_bff_token_cannot_sign_in(page: Page, live: LiveStack) -> None:
    sign_in(page, live, BFF_TOKEN)
    assert "the console needs an admin token" in page.inner_text("[role=alert]")
    assert not [c for c in page.context.cookies() if c["name"] == "orderpay_console"]
    page.goto(f"{live.console_url}/attention")
    assert page.url.endswith("/sign-in")


def test_a_form_without_its_csrf_token_is_refused(page: Page, live: LiveStack) -> None:
    order = live.held_order()
    sign_in(page, live)
    page.goto(f"{live.console_url}/orders/{order.order_id}")
    page.eval_on_selector("#refund-held input[name=csrf]", "input => input.remove()")
    page.fill("#refund-held textarea[name=reason]", "forged")
    page.check("#refund-held input[name=confirm]")
    page.click("#refund-held button[type=submit]")
    assert "CSRF" in page.inner_text("[role=alert]")
    after = live.order(order.order_id)
    assert (after.fulfilment, after.version) == (Fulfilment.HELD, order.version)


def test_every_page_at_1280_and_390_px_without_missing_glyphs(page: Page, live: LiveStack) -> None:
    """capture() fails on a missing-glyph box or a page wider than the viewport, at each width."""
    order = live.held_order()
    names = ["sign-in"]
    page.goto(f"{live.console_url}/sign-in")
    capture(page, SHOTS, "sign-in")
    sign_in(page, live)
    for name, path in (
        ("attention", "/attention"),
        ("orders", "/orders?fulfilment=HELD"),
        ("order", f"/orders/{order.order_id}"),
        ("refunds", "/refunds"),
        ("notifications", "/notifications"),
        ("jobs", "/jobs"),
        ("overview", "/overview"),
    ):
        page.goto(f"{live.console_url}{path}")
        capture(page, SHOTS, name)
        names.append(name)
    page.goto(f"{live.console_url}/orders/{order.order_id}")
    assert page.evaluate(GLYPH_CHECK)["checked"] > 10  # Chinese labels were there to check
    act(page, "#accept-held", "goodwill: 1 fen")
    capture(page, SHOTS, "result")
    names.append("result")

    # The check itself finds a box: a code point no font covers is reported, a covered one is not.
    page.evaluate(r"() => { document.body.innerText = '\u4e2d\u{10FFFB}'; }")
    assert page.evaluate(GLYPH_CHECK)["missing"] == ["\U0010fffb"]
    assert sorted(p.name for p in SHOTS.glob("*.png")) == sorted(
        f"{name}-{width}.png" for name in names for width in WIDTHS
    )
