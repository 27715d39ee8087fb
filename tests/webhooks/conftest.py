"""Fixtures of the webhook tests (tests/webhooks/test_webhook*.py): an App per module on a clock the tests
move, a real receiver on 127.0.0.1:0 per test, the sender job, and a subscriber of each test's own."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from server.adapters.webhook_http import HttpxWebhookSender, webhook_body
from server.app import App
from server.bootstrap import build_app
from server.domain.catalogue import ProductKind
from server.jobs.webhooks import WebhookTask
from server.service.webhook_delivery import WebhookDelivery
from server.service.webhook_ports import WebhookSender
from server.service.webhooks import WebhookConfig
from server.webhook_wiring import delivery
from tests.jobs.helpers import MovableClock, add_product
from tests.support.settings import settings_for
from tests.support.webhook_receiver import HOOK_PRODUCT, RecordingReceiver


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(scope="module")
def hooks_app(database_url: str, clock: MovableClock) -> Iterator[App]:
    settings = settings_for(
        database_url,
        webhook_backoff_base_s=1.0,
        webhook_backoff_max_s=2.0,
        webhook_disable_after_days=2.0,
        webhook_timeout_s=5.0,
    )
    application = build_app(settings, clock=clock, payments_required=False)
    add_product(application, HOOK_PRODUCT, ProductKind.ARTICLE)
    yield application
    application.close()


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    got = RecordingReceiver()
    yield got
    got.stop()


@pytest.fixture
def task(hooks_app: App) -> Iterator[WebhookTask]:
    job = WebhookTask(delivery(hooks_app), concurrency=2)
    yield job
    job.close()  # its kept-alive connections


@pytest.fixture
def make_delivery(hooks_app: App) -> Iterator[Callable[..., WebhookDelivery]]:
    """Senders as separate processes would have them, each closed (its connections) afterwards."""
    made: list[WebhookDelivery] = []

    def make(config: WebhookConfig | None = None, sender: WebhookSender | None = None) -> WebhookDelivery:
        config = config or hooks_app.webhooks.config
        sender = sender or HttpxWebhookSender(config.timeout_s, 2)
        made.append(
            WebhookDelivery(hooks_app.uow, hooks_app.read, hooks_app.clock, config, sender, webhook_body)
        )
        return made[-1]

    yield make
    for sender in made:
        sender.close()


@pytest.fixture
def name(hooks_app: App) -> Iterator[str]:
    """A subscriber of this test's own, starting at the head; its webhook is removed afterwards so the
    next test's runs never meet this test's receiver."""
    chosen = f"hook-{secrets.token_hex(4)}"
    hooks_app.feed.register(chosen)
    hooks_app.feed.ack(chosen, hooks_app.feed.head())
    yield chosen
    hooks_app.webhooks.register(chosen, "")
