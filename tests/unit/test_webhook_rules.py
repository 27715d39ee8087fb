"""The webhook rules with no I/O (server/domain/webhooks.py): URL policy, signature, back-off with
jitter, disablement after continuous failure, rotation."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from server.domain.errors import WebhookUrlRefusedError
from server.domain.webhooks import (
    DeliveryPolicy,
    UrlPolicy,
    Webhook,
    WebhookState,
    check_webhook_url,
    signature,
    signature_header,
)

DEV, PROD = UrlPolicy(production=False), UrlPolicy(production=True)
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("url", ["http://crm.internal:8000/hook", "https://crm.example.com/h?x=1"])
def test_outside_production_http_and_https_are_accepted(url: str) -> None:
    assert check_webhook_url(url, DEV) == url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/h", "http://localhost/h", "http://[::1]:8/h", "https://crm.example.com/h"]
)
def test_production_takes_https_and_loopback_http(url: str) -> None:
    assert check_webhook_url(url, PROD) == url


def test_production_refuses_plain_http_unless_the_setting_allows_it() -> None:
    with pytest.raises(WebhookUrlRefusedError) as refused:
        check_webhook_url("http://crm.example.com/h", PROD)
    assert refused.value.violations[0].field == "webhook_url"
    assert "order data" in refused.value.message
    allowed = UrlPolicy(production=True, allow_http=True)
    assert check_webhook_url("http://crm.example.com/h", allowed) == "http://crm.example.com/h"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "crm.example.com/h",
        "javascript:alert(1)",
        "gopher://x/",
        "https://a:b@x.example/",
        "https://x/#f",
        "https://x/\n",
    ],
)
def test_what_is_never_a_webhook_url(url: str) -> None:
    with pytest.raises(WebhookUrlRefusedError):
        check_webhook_url(url, DEV)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"position":"7"}'
    expected = hmac.new(b"whsec_k", b"1733600000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_k", 1733600000, body) == expected
    assert signature_header(("whsec_k", "whsec_old"), 1733600000, body) == (
        f"v1={expected},v1={signature('whsec_old', 1733600000, body)}"
    )


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_back_off_doubles_to_its_cap_with_jitter_of_at_most_half(rand: float) -> None:
    policy = DeliveryPolicy(backoff_base=timedelta(seconds=10), backoff_max=timedelta(seconds=60))
    steps = [policy.backoff(n, lambda: rand).total_seconds() for n in range(1, 7)]
    ceilings = [10, 20, 40, 60, 60, 60]
    for step, ceiling in zip(steps, ceilings, strict=True):
        assert ceiling / 2 <= step <= ceiling


def test_continuous_failure_disables_after_the_configured_time_and_a_success_resets() -> None:
    policy = DeliveryPolicy(disable_after=timedelta(days=3))
    hook = Webhook("crm", "https://x/", "whsec_k")
    hook = hook.failed(T0, "HTTP 500", policy, lambda: 0.0)
    assert (hook.state, hook.consecutive_failures, hook.failing_since) == (WebhookState.ACTIVE, 1, T0)
    assert hook.next_attempt_at is not None
    assert hook.next_attempt_at > T0
    hook = hook.failed(T0 + timedelta(days=2, hours=23), "timed out", policy, lambda: 0.0)
    assert hook.state is WebhookState.ACTIVE
    assert hook.succeeded(T0 + timedelta(days=3)).failing_since is None  # a success in time: clean
    hook = hook.failed(T0 + timedelta(days=3), "HTTP 502", policy, lambda: 0.0)
    assert (hook.state, hook.disabled_at, hook.next_attempt_at) == (
        WebhookState.DISABLED,
        T0 + timedelta(days=3),
        None,
    )
    back = hook.enabled()
    assert (back.state, back.consecutive_failures, back.failing_since) == (WebhookState.ACTIVE, 0, None)
    assert back.last_error == "HTTP 502"  # kept for the record


def test_a_rotated_out_secret_signs_only_during_the_overlap() -> None:
    hook = Webhook("crm", "https://x/", "whsec_old").rotated("whsec_new", T0, timedelta(hours=24))
    assert hook.signing_secrets(T0 + timedelta(hours=23)) == ("whsec_new", "whsec_old")
    assert hook.signing_secrets(T0 + timedelta(hours=24)) == ("whsec_new",)


def test_a_new_url_starts_clean_and_keeps_the_secret() -> None:
    hook = Webhook("crm", "https://a/", "whsec_k").failed(T0, "HTTP 500", DeliveryPolicy(), lambda: 0.5)
    moved = hook.moved_to("https://b/")
    assert (moved.url, moved.secret, moved.consecutive_failures, moved.last_error) == (
        "https://b/",
        "whsec_k",
        0,
        "",
    )


def test_the_verify_example_in_the_docs_accepts_what_orderpay_signs() -> None:
    """docs/event-feed.md § Verifying it: the snippet as written, against the server's own signing."""
    import re
    import time
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "event-feed.md").read_text(encoding="utf-8")
    section = doc[doc.index("### Verifying it") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    scope: dict[str, object] = {}
    exec(match.group(1), scope)  # noqa: S102 - our own documentation
    verify = scope["verify"]
    body, now = b'{"position":"1"}', int(time.time())
    header = signature_header(("whsec_new", "whsec_old"), now, body)
    assert verify("whsec_old", str(now), header, body)  # type: ignore[operator]
    assert not verify("whsec_other", str(now), header, body)  # type: ignore[operator]
    assert not verify("whsec_new", str(now - 600), signature_header(("whsec_new",), now - 600, body), body)  # type: ignore[operator]
