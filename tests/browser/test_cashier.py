"""The cashier page driven by headless Chromium: open a NATIVE order's page from its code_url, click
Pay, and the TRANSACTION.SUCCESS notification reaches the merchant's receiver; each state looks
different and is final where it should be; desktop (1280 px) and phone (390 px) layouts, screenshot
into .artifacts/cashier/ (git-ignored), with no glyph drawn as a missing-glyph box."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import segno
from playwright.sync_api import Browser, Page

from sandbox.app import RunningServer, make_app, serve_in_thread
from sandbox.config import SandboxConfig
from sandbox.engine.state import SANDBOX, Sandbox, utc_now
from sandbox.keys.bundle import init_bundle, load_credentials
from sandbox.testing import MerchantCaller, NotificationReceiver, prepay_body

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "cashier"
WIDTHS = {"desktop": 1280, "phone": 390}
HEIGHT = {"desktop": 900, "phone": 844}

# Every distinct character of the page's text that the page's own font cannot draw: each is drawn on
# a canvas and compared, pixel for pixel, with a character no font has (U+0378 is unassigned), which
# every browser draws as its missing-glyph box (tofu).
MISSING_GLYPHS_JS = """
(extra) => {
  const canvas = document.createElement('canvas');
  canvas.width = 80; canvas.height = 80;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.font = '40px ' + getComputedStyle(document.body).fontFamily;
  const draw = (ch) => {
    ctx.clearRect(0, 0, 80, 80);
    ctx.fillText(ch, 8, 56);
    return Array.from(ctx.getImageData(0, 0, 80, 80).data).join(',');
  };
  const tofu = draw('\\u0378');
  const text = document.body.innerText + extra;
  const chars = [...new Set([...text])].filter((ch) => ch.trim() !== '');
  return chars.filter((ch) => draw(ch) === tofu);
}
"""


@dataclass
class Clock:
    """The sandbox's now, movable by tests (for the expired state)."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return utc_now() + self.offset


@dataclass
class Cashier:
    server: RunningServer
    clock: Clock

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def sandbox(self) -> Sandbox:
        return self.server.app[SANDBOX]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Cashier]:
    init_bundle(tmp_path)
    clock = Clock()
    server = serve_in_thread(make_app(SandboxConfig(credentials=load_credentials(tmp_path)), clock))
    yield Cashier(server, clock)
    server.stop()


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    rx = NotificationReceiver().start()
    yield rx
    rx.stop()


def native_order(sandbox: Cashier, receiver: NotificationReceiver, out_trade_no: str) -> str:
    """Create a NATIVE order; return the cashier URL its code_url stands for."""
    body = prepay_body(sandbox.sandbox.credentials, out_trade_no, receiver.url, amount={"total": 1990})
    del body["payer"]
    code_url: str = _prepay(sandbox, "native", body)["code_url"]
    token = code_url.removeprefix("weixin://wxpay/bizpayurl?pr=")
    return f"{sandbox.base_url}/sandbox/cashier/{token}"


def jsapi_order(sandbox: Cashier, receiver: NotificationReceiver, out_trade_no: str) -> str:
    _prepay(sandbox, "jsapi", prepay_body(sandbox.sandbox.credentials, out_trade_no, receiver.url))
    token = sandbox.sandbox.backend.trade(out_trade_no).cashier_token
    return f"{sandbox.base_url}/sandbox/cashier/{token}"


def _prepay(sandbox: Cashier, channel: str, body: dict[str, object]) -> dict[str, str]:
    caller = MerchantCaller(sandbox.base_url, sandbox.sandbox.credentials)
    try:
        answer: dict[str, str] = caller.call("POST", f"/v3/pay/transactions/{channel}", body).json()
    finally:
        caller.close()
    return answer


def _new_page(browser: Browser, width: str = "desktop") -> Page:
    page = browser.new_page(viewport={"width": WIDTHS[width], "height": HEIGHT[width]})
    # The suite runs these beside the drills (long files first): on a loaded 2-core box the sandbox's
    # thread may take longer than Playwright's 30 s default to answer; what is checked is the page.
    page.set_default_navigation_timeout(120_000)
    return page


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _layout_problems(page: Page) -> list[str]:
    """What a person would see as broken: tofu, a sideways scroll, a card touching the screen edge."""
    problems = [f"missing glyph {ch!r}" for ch in page.evaluate(MISSING_GLYPHS_JS, "")]
    viewport = page.viewport_size or {"width": 0}
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    if scroll_width > viewport["width"]:
        problems.append(f"page is {scroll_width} px wide in a {viewport['width']} px viewport")
    card = page.locator("main").bounding_box() or {"x": 0, "width": 0}
    right_gap = viewport["width"] - (card["x"] + card["width"])
    if min(card["x"], right_gap) < 12:
        problems.append(f"card is {card['x']:.0f} / {right_gap:.0f} px from the screen edges")
    return problems


def test_clicking_pay_fires_the_payment_notification(
    browser: Browser, sandbox: Cashier, receiver: NotificationReceiver
) -> None:
    out_trade_no = "WEB" + secrets.token_hex(8)
    url = native_order(sandbox, receiver, out_trade_no)
    page = _new_page(browser)
    try:
        page.goto(url)
        assert page.locator("#amount").inner_text() == "¥19.90"
        assert page.locator("#description").inner_text() == "VIP 月卡"
        assert sandbox.sandbox.credentials.mchid in page.locator("#merchant").inner_text()
        page.click("#pay")
        page.wait_for_selector("text=支付成功")
        # Post-redirect-get: the browser is back on the page itself, so a refresh resubmits nothing.
        assert page.url == url
        assert page.locator("#state").get_attribute("data-state") == "paid"
        assert page.locator("#pay").is_disabled()
        assert page.locator("#cancel").is_disabled()
        page.reload()
        assert page.locator("#state").get_attribute("data-state") == "paid"
    finally:
        page.close()
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    envelope = json.loads(got.body)
    assert envelope["event_type"] == "TRANSACTION.SUCCESS"
    assert len(sandbox.sandbox.notifier.notifications) == 1  # the reload sent nothing


def test_clicking_cancel_leaves_the_order_unpaid(
    browser: Browser, sandbox: Cashier, receiver: NotificationReceiver
) -> None:
    out_trade_no = "WEB" + secrets.token_hex(8)
    url = native_order(sandbox, receiver, out_trade_no)
    page = _new_page(browser)
    try:
        page.goto(url)
        page.click("#cancel")
        page.wait_for_selector("text=Cancelled")
        assert page.url == f"{url}?note=cancelled"  # a GET: a refresh shows the same again
        assert page.locator("#cancel").is_disabled()
        assert page.locator("#pay").is_enabled()  # a payer who changes their mind can still pay
        assert page.locator("#state").get_attribute("data-state") == "awaiting"
    finally:
        page.close()
    assert sandbox.sandbox.backend.trade(out_trade_no).trade_state == "NOTPAY"
    assert receiver.received == []


@pytest.mark.parametrize("width", list(WIDTHS))
def test_each_state_looks_different_and_fits_the_screen(
    browser: Browser, sandbox: Cashier, receiver: NotificationReceiver, width: str
) -> None:
    urls = {state: native_order(sandbox, receiver, f"WEB{state[:3]}{secrets.token_hex(6)}") for state in (
        "awaiting", "paid", "closed", "expired"
    )}  # fmt: skip
    backend = sandbox.sandbox.backend
    sandbox.sandbox.simulator.pay(_out_trade_no(sandbox, urls["paid"]))
    backend.close(_out_trade_no(sandbox, urls["closed"]))
    colours: dict[str, str] = {}
    page = _new_page(browser, width)
    try:
        for state in ("awaiting", "paid", "closed"):
            colours[state] = _check_state(page, urls[state], state, f"{state}-{width}")
        sandbox.clock.offset = timedelta(days=8)  # past the 7-day pay window: WeChat closes it
        colours["expired"] = _check_state(page, urls["expired"], "expired", f"expired-{width}")
    finally:
        page.close()
    assert len(set(colours.values())) == len(colours), colours


def _check_state(page: Page, url: str, state: str, name: str) -> str:
    page.goto(url)
    _screenshot(page, name)
    assert page.locator("#state").get_attribute("data-state") == state
    final = state != "awaiting"
    assert page.locator("#pay").is_disabled() == final
    assert page.locator("#cancel").is_disabled() == final
    assert page.locator("#qr").is_visible() == (not final)  # a code to scan only while it can be paid
    labels = page.locator("dt").all_inner_texts()
    assert all(re.search(r"[\u4e00-\u9fff].*[A-Za-z]", label, re.DOTALL) for label in labels), labels
    assert _layout_problems(page) == []
    colour: str = page.evaluate("getComputedStyle(document.querySelector('#state')).backgroundColor")
    return colour


def _out_trade_no(sandbox: Cashier, url: str) -> str:
    return sandbox.sandbox.backend.trade_by_token(url.rsplit("/", 1)[1]).out_trade_no


def test_the_missing_glyph_check_sees_a_missing_glyph(browser: Browser, sandbox: Cashier) -> None:
    page = _new_page(browser)
    try:
        page.goto(f"{sandbox.base_url}/")
        # U+E000 is private use: no font draws it. If this returned nothing, the check would be blind.
        assert page.evaluate(MISSING_GLYPHS_JS, "\ue000") == ["\ue000"]
    finally:
        page.close()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_a_native_page_shows_a_qr_code_of_its_own_url(
    browser: Browser, sandbox: Cashier, receiver: NotificationReceiver, width: str
) -> None:
    url = native_order(sandbox, receiver, "WEB" + secrets.token_hex(8))
    page = _new_page(browser, width)
    try:
        page.goto(url)
        _screenshot(page, f"native-qr-{width}")
        assert page.locator("#page-url").inner_text() == url
        drawn = page.locator("#qr svg path.qrline").get_attribute("d")
        assert drawn == _qr_path(url)  # the modules of the page's own URL, encoded independently
        box = page.locator("#qr svg").bounding_box() or {"width": 0}
        assert box["width"] >= 150  # big enough for a phone camera at arm's length
        assert _layout_problems(page) == []
    finally:
        page.close()


def test_other_channels_show_no_qr_code(
    browser: Browser, sandbox: Cashier, receiver: NotificationReceiver
) -> None:
    url = jsapi_order(sandbox, receiver, "WEB" + secrets.token_hex(8))
    page = _new_page(browser)
    try:
        page.goto(url)
        assert not page.locator("#qr").is_visible()
        assert page.locator("#trade-type").inner_text() == "公众号支付 In WeChat (JSAPI)"
    finally:
        page.close()


def test_the_sandbox_index_links_to_each_cashier_page(
    browser: Browser, sandbox: Cashier, receiver: NotificationReceiver
) -> None:
    url = native_order(sandbox, receiver, "WEBIDX" + secrets.token_hex(6))
    page = _new_page(browser, "phone")
    try:
        page.goto(f"{sandbox.base_url}/")
        _screenshot(page, "sandbox-index-phone")
        assert "fake WeChat Pay" in page.title()
        assert page.evaluate(MISSING_GLYPHS_JS, "") == []
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS["phone"]
        page.click("table a:has-text('cashier page')")
        page.wait_for_url(url)
        page.goto(f"{sandbox.base_url}/")
        page.click("text=GET /sandbox/v1/config")
        page.wait_for_url(f"{sandbox.base_url}/sandbox/v1/config")
        assert json.loads(page.locator("body").inner_text())["auto_pay_delay_s"] is None
    finally:
        page.close()


def _qr_path(url: str) -> str:
    svg = segno.make(url, error="m", micro=False).svg_inline(scale=4, border=2)
    found = re.search(r'class="qrline"[^>]* d="([^"]+)"', svg)
    assert found is not None
    return found.group(1)


def test_without_a_cjk_font_the_check_sees_boxes(
    browser: Browser, tmp_path: Path, sandbox: Cashier, receiver: NotificationReceiver
) -> None:
    """The machine the issue was found on: fontconfig knows only DejaVu, so every Chinese glyph is a box.
    The check must say so; it is what keeps `make chromium` honest about installing a CJK font."""
    fonts_conf = tmp_path / "fonts.conf"
    fonts_conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f"<dir>/usr/share/fonts/truetype/dejavu</dir><cachedir>{tmp_path / 'fc-cache'}</cachedir>"
        "</fontconfig>",
        encoding="utf-8",
    )
    if not Path("/usr/share/fonts/truetype/dejavu").is_dir():
        pytest.skip("needs fonts-dejavu-core")
    url = native_order(sandbox, receiver, "WEB" + secrets.token_hex(8))
    bare = browser.browser_type.launch(  # a second Chromium from the same Playwright, fonts cut down
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, env={"FONTCONFIG_FILE": str(fonts_conf)}
    )
    try:
        page = bare.new_page(viewport={"width": WIDTHS["phone"], "height": HEIGHT["phone"]})
        page.goto(url)
        _screenshot(page, "awaiting-phone-without-cjk-font")
        missing = page.evaluate(MISSING_GLYPHS_JS, "")
    finally:
        bare.close()
    assert {"支", "付", "商", "品"} <= set(missing)
    assert not {"P", "a", "y", "¥", "1"} & set(missing)  # Latin and digits are drawn
