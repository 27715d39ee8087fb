"""Signed webhooks from Settings: the use cases (every App) and the sender (the job only)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from server.adapters.webhook_http import HttpxWebhookSender, webhook_body
from server.app import App
from server.config import Settings
from server.domain.clock import Clock
from server.domain.webhooks import DeliveryPolicy, UrlPolicy
from server.loopback import is_loopback
from server.service.ports import ReadFactory, UnitOfWorkFactory
from server.service.webhook_delivery import WebhookDelivery
from server.service.webhooks import WebhookConfig, WebhookService


def url_policy(settings: Settings) -> UrlPolicy:
    """Production as the guard sees it (server/guard.py): declared, or a real WeChat Pay gateway."""
    declared = settings.env.strip().lower() == "production"
    remote_gateway = not is_loopback(urlsplit(settings.wxpay_base_url).hostname or "")
    return UrlPolicy(production=declared or remote_gateway, allow_http=settings.webhook_allow_http)


def webhook_config(settings: Settings) -> WebhookConfig:
    policy = DeliveryPolicy(
        backoff_base=timedelta(seconds=settings.webhook_backoff_base_s),
        backoff_max=timedelta(seconds=settings.webhook_backoff_max_s),
        disable_after=timedelta(days=settings.webhook_disable_after_days),
        secret_overlap=timedelta(hours=settings.webhook_secret_overlap_h),
    )
    lease = timedelta(seconds=max(60.0, 6 * settings.webhook_timeout_s))
    return WebhookConfig(url_policy(settings), policy, lease, settings.webhook_timeout_s)


def build_webhooks(
    settings: Settings, uow: UnitOfWorkFactory, read: ReadFactory, clock: Clock
) -> WebhookService:
    return WebhookService(uow, read, clock, webhook_config(settings))


def delivery(app: App) -> WebhookDelivery:
    """What the job delivers with: the App's database and clock, an HTTP client of its own."""
    settings = app.settings
    sender = HttpxWebhookSender(settings.webhook_timeout_s, settings.webhook_concurrency)
    return WebhookDelivery(app.uow, app.read, app.clock, app.webhooks.config, sender, webhook_body)
