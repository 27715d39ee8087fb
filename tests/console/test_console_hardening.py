"""The 2026-12 audit's L2 (console side) and L3 through the real console listener: under TLS the
sign-in cookie is Secure and every answer carries HSTS; repeated wrong tokens are throttled per address
(429 with Retry-After, the right token refused too while locked), counted in a metric and logged."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from server.metrics import REGISTRY
from tests.support.console_stack import ADMIN_TOKEN, LiveStack, live_stack
from tests.support.tls import make_pki


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("console-hardening")) as running:
        yield running


def _attempt(client: httpx.Client, token: str) -> httpx.Response:
    form = client.get("/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    return client.post("/sign-in", data={"csrf": csrf.group(1), "token": token})


def _failed() -> float:
    return REGISTRY.get_sample_value("orderpay_console_signin_failed_total") or 0.0


def test_a_non_numeric_expected_version_is_400_not_500(live: LiveStack) -> None:
    """The audit's INFO: `expected_version=abc` in a console form was a 500 (an uncaught int())."""
    with httpx.Client(base_url=live.console_url) as client:
        assert _attempt(client, ADMIN_TOKEN).status_code == 302
        page = client.get("/attention")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        answer = client.post(
            "/actions/resolve",
            data={"csrf": csrf.group(1), "order_id": "ord_x", "expected_version": "abc", "reason": "r"},
        )
    assert answer.status_code == 400


def test_wrong_tokens_are_throttled_counted_and_logged(live: LiveStack) -> None:
    before = _failed()
    with httpx.Client(base_url=live.console_url) as client, capture_logs() as logs:
        statuses = [_attempt(client, f"wrong-{n}").status_code for n in range(8)]
        locked = _attempt(client, ADMIN_TOKEN)  # the right token, while the address is locked out
    assert statuses[:5] == [403] * 5
    assert 429 in statuses[5:]
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) >= 1
    assert _failed() >= before + 5
    assert [entry["failures"] for entry in logs if entry["event"] == "console.signin_failing"] == [5]


def test_under_tls_the_sign_in_cookie_is_secure_and_answers_carry_hsts(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    with live_stack(
        tmp_path, console_tls_cert=str(pki.server_cert), console_tls_key=str(pki.server_key)
    ) as running:
        url = running.console_url.replace("http://", "https://")
        with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(pki.ca))) as client:
            form = client.get("/sign-in")
    assert form.status_code == 200
    assert "Secure" in form.headers["set-cookie"]
    assert form.headers["strict-transport-security"].startswith("max-age=")
