"""The notification counter's `account` label (issue 18 §5): the configured account a notify URL names,
the default account for the bare URL, and `unknown` for any other name, so no value from the wire
becomes a label (the label's cardinality is the configuration's)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import App
from server.metrics import REGISTRY
from server.notify.app import make_notify_app
from server.service.notifications import NotificationService
from tests.notify.fakes import FakeLedger, service_with
from tests.notify.rows import NotificationRows

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


def outcomes(account: str) -> float:
    """Every outcome counted under `account`."""
    total = 0.0
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == "orderpay_notifications_total" and sample.labels.get("account") == account:
                total += sample.value
    return total


async def test_notifications_are_counted_under_their_configured_account_or_unknown(
    aiohttp_client: MakeClient, bundle_dir: Path, notify_app: App, store: NotificationRows
) -> None:
    real = service_with(notify_app.uow, FakeLedger(), bundle_dir, notify_app)
    service = NotificationService(
        uow=notify_app.uow,
        clock=notify_app.clock,
        parse=real._parse_signed,
        payments=FakeLedger(),
        refunds=FakeLedger(),
        accounts=("shop-a", "shop-b"),
    )
    client = await aiohttp_client(make_notify_app(service, max_body_bytes=16 * 1024, ready_check=store.ping))
    stranger = "evil-" + secrets.token_hex(6)
    before = {name: outcomes(name) for name in ("shop-a", "shop-b", "unknown", stranger)}

    for path in (
        "/wxpay/notify",
        "/wxpay/notify/shop-b",
        "/wxpay/notify/shop-b",
        f"/wxpay/notify/{stranger}",
    ):
        answer = await client.post(path, data=b"{}", headers={"Content-Type": "application/json"})
        assert 400 <= answer.status < 500

    after = {name: outcomes(name) for name in before}
    assert after["shop-a"] - before["shop-a"] == 1  # the bare URL: the default account
    assert after["shop-b"] - before["shop-b"] == 2
    assert after["unknown"] - before["unknown"] == 1
    assert after[stranger] == before[stranger] == 0  # never a label
