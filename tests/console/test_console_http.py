"""The console over plain HTTP (no browser): sign-in rules, CSRF, headers, and the listener guard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.config import ConfigError, Settings
from server.console.deps import fmt_time
from server.console.listener import check_console_listener
from server.domain.order import CreateOrder
from server.domain.webhooks import Webhook
from server.service.context import Caller
from tests.support.console_stack import ADMIN_TOKEN, BFF_TOKEN, LiveStack, live_stack
from tests.support.serving import whole_stack
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import RecordingReceiver


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("console")) as running:
        yield running


def sign_in(client: httpx.Client, token: str) -> httpx.Response:
    form = client.get("/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    return client.post("/sign-in", data={"csrf": csrf.group(1), "token": token})


def test_admin_signs_in_with_a_strict_httponly_cookie_and_out_again(live: LiveStack) -> None:
    with httpx.Client(base_url=live.console_url) as client:
        assert client.get("/attention").status_code == 302  # not signed in: to the sign-in page
        answer = sign_in(client, ADMIN_TOKEN)
        assert answer.status_code == 302
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        page = client.get("/attention")
        assert page.status_code == 200
        assert "Needs attention" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        assert client.post("/sign-out", data={"csrf": csrf.group(1)}).status_code == 302
        assert client.get("/attention").status_code == 302


def test_a_bff_token_cannot_sign_in(live: LiveStack) -> None:
    with httpx.Client(base_url=live.console_url) as client:
        answer = sign_in(client, BFF_TOKEN)
        assert answer.status_code == 403
        assert "admin token" in answer.text
        assert "orderpay_console=" not in answer.headers.get("set-cookie", "")


def test_posts_without_the_csrf_token_are_refused(live: LiveStack) -> None:
    order = live.held_order()
    with httpx.Client(base_url=live.console_url) as client:
        assert client.post("/sign-in", data={"token": ADMIN_TOKEN}).status_code == 403  # login form too
        sign_in(client, ADMIN_TOKEN)
        form = {"order_id": order.order_id, "resolution": "REFUND", "reason": "r", "confirm": "yes"}
        refused = client.post("/actions/resolve", data=form)
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        assert client.post("/actions/resolve", data={**form, "csrf": "forged"}).status_code == 403
    assert live.order(order.order_id).version == order.version


@pytest.mark.parametrize(
    ("listen", "changes", "ok"),
    [
        ("", {}, True),
        (":8081", {}, True),
        ("127.0.0.1:8081", {}, True),
        ("[::1]:8081", {}, True),
        ("0.0.0.0:8081", {}, False),
        ("10.0.0.5:8081", {"console_allow_public_plaintext": True}, True),
        ("10.0.0.5:8081", {"console_tls_cert": "c.pem", "console_tls_key": "k.pem"}, True),
        ("10.0.0.5:8081", {"console_tls_cert": "c.pem"}, False),
        ("nonsense", {}, False),
    ],
)
def test_the_listener_is_loopback_unless_tls_or_an_explicit_opt_out(
    listen: str, changes: dict[str, object], ok: bool
) -> None:
    settings = Settings(console_listen=listen).with_overrides(**changes)
    if ok:
        listener = check_console_listener(settings)
        assert listener is None if not listen else listener.port == 8081
        if listen.startswith(":"):
            assert listener is not None
            assert listener.host == "127.0.0.1"
    else:
        with pytest.raises(ConfigError, match="ORDERPAY_CONSOLE"):
            check_console_listener(settings)


def test_serve_refuses_a_public_plaintext_console(tmp_path: Path) -> None:
    from server.guard import UnsafeConfigurationError, enforce

    settings = Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite", console_listen="0.0.0.0:0")
    with pytest.raises(ConfigError, match="not loopback"):
        whole_stack(settings)
    with pytest.raises(UnsafeConfigurationError, match="ORDERPAY_CONSOLE_LISTEN"):
        enforce(settings)


def test_the_jobs_page_shows_each_event_feed_subscribers_lag(live: LiveStack) -> None:
    feed = live.stack.app.feed
    feed.register("console-crm")
    feed.ack("console-crm", feed.head())
    live.stack.app.orders.create_order(
        CreateOrder(
            request_id="console-feed", user_id="console-feed-user", product_id="vip-month", quantity=1
        ),
        Caller("bff", "test"),
    )
    lag = feed.head() - feed.lags()[0].subscriber.acked_position
    assert lag >= 1
    with httpx.Client(base_url=live.console_url) as client:
        sign_in(client, ADMIN_TOKEN)
        page = client.get("/jobs")
    assert page.status_code == 200
    section = page.text[page.text.index('id="feed-subscribers"') :]
    assert "console-crm" in section
    assert f'<td class="num">{lag}</td>' in section


_NONE = Webhook("", "", "")


def _act(client: httpx.Client, path: str, fields: dict[str, str]) -> httpx.Response:
    page = client.get("/jobs")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return client.post(
        path, data={**fields, "csrf": csrf.group(1), "reason": "receiver fixed", "confirm": "yes"}
    )


def _row(client: httpx.Client, name: str) -> str:
    page = client.get("/jobs")
    assert page.status_code == 200
    start = page.text.index(f'id="subscriber-{name}"')
    return page.text[start : page.text.index("</tr>", start)]


def test_the_jobs_page_shows_each_webhook_and_switches_it_off_and_on(live: LiveStack) -> None:
    """The running job delivers to a real receiver on port 0: failing, it shows the error and the
    failures; switched off and on from the console, it delivers from the acknowledged position."""
    app = live.stack.app
    receiver = RecordingReceiver()
    receiver.fail_always, receiver.fail_status = True, 503
    try:
        app.feed.register("console-hook")
        app.feed.ack("console-hook", app.feed.head())
        app.webhooks.register("console-hook", receiver.url)
        app.orders.create_order(
            CreateOrder("console-hook", "console-hook-user", "vip-month", 1), Caller("bff", "t")
        )
        wait_until(lambda: receiver.received, 30, "the job's first POST")
        wait_until(
            lambda: (app.webhooks.webhook_of("console-hook") or _NONE).consecutive_failures >= 1,
            30,
            "a failure",
        )
        with httpx.Client(base_url=live.console_url) as client:
            sign_in(client, ADMIN_TOKEN)
            row = _row(client, "console-hook")
            assert receiver.url in row
            assert "b-active" in row
            assert "HTTP 503" in row
            assert "retry " in row  # the back-off's next attempt
            assert 'id="disable-webhook-console-hook"' in row
            done = _act(client, "/actions/webhooks/disable", {"subscriber": "console-hook"})
            assert done.status_code == 200
            assert "DISABLED" in done.text
            row = _row(client, "console-hook")
            assert "b-disabled" in row
            assert "since " in row
            assert 'id="enable-webhook-console-hook"' in row
            receiver.fail_always = False
            done = _act(client, "/actions/webhooks/enable", {"subscriber": "console-hook"})
            assert done.status_code == 200
            assert "ACTIVE" in done.text
            wait_until(
                lambda: any(r.answered == 204 for r in receiver.received), 30, "delivery after re-enabling"
            )
            hook = lambda: app.webhooks.webhook_of("console-hook") or _NONE  # noqa: E731
            wait_until(lambda: hook().last_success_at is not None, 30, "a success recorded")
            assert fmt_time(hook().last_success_at) in _row(client, "console-hook")
            assert "b-active" in _row(client, "console-hook")
    finally:
        app.webhooks.register("console-hook", "")
        receiver.stop()
