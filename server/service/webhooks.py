"""Signed webhooks for event-feed subscribers (issue 19 item 4): registering one, switching it on and
off, rotating its secret, and the subscriber list. Delivery is server.service.webhook_delivery."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from server.domain.clock import Clock
from server.domain.errors import SubscriberNotFoundError, WebhookNotFoundError
from server.domain.feed import check_subscriber
from server.domain.webhooks import (
    DeliveryPolicy,
    UrlPolicy,
    Webhook,
    check_webhook_url,
)
from server.service.context import Caller
from server.service.feed_ports import Subscriber
from server.service.ports import ReadFactory, UnitOfWorkFactory

log = structlog.get_logger("orderpay.webhooks")


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class WebhookConfig:
    urls: UrlPolicy
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    lease: timedelta = timedelta(seconds=60)  # a claimed webhook is this sender's for this long
    timeout_s: float = 10.0  # per POST (the sender's own budget); a run stops in time to keep its lease
    batch: int = 100  # events read per subscriber per run


@dataclass(frozen=True)
class Registered:
    subscriber: Subscriber
    webhook: Webhook | None
    secret: str = ""  # only in the answer that generated it: never shown again


@dataclass(frozen=True)
class SubscriberView:
    subscriber: Subscriber
    head: int
    webhook: Webhook | None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.subscriber.acked_position)


class WebhookService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read: ReadFactory,
        clock: Clock,
        config: WebhookConfig,
        *,
        generate: Callable[[], str] = new_secret,
    ) -> None:
        self._uow, self._read, self._clock, self.config = uow, read, clock, config
        self._generate = generate

    # --- the subscriber's side (EventService, the CLI, the console) ---------------------------------
    def register(self, name: str, url: str) -> Registered:
        """Register the subscriber (idempotent) and set its webhook: a new one gets a secret, a new URL
        keeps the secret and starts clean, "" removes the webhook."""
        check_subscriber(name)
        if url:
            check_webhook_url(url, self.config.urls)
        now, secret = self._clock(), ""
        with self._uow() as uow:
            subscriber = uow.subscribers.register(name, now)
            webhook = uow.webhooks.get_for_update(name)
            if not url:
                if webhook is not None:
                    uow.webhooks.delete(name)
                webhook = None
            elif webhook is None:
                secret = self._generate()
                webhook = Webhook(name, url, secret)
                uow.webhooks.create(webhook, now)
            elif webhook.url != url:
                webhook = webhook.moved_to(url)
                uow.webhooks.save(webhook)
        if url:
            log.info("webhook.registered", subscriber=name, url=url, new_secret=bool(secret))
        return Registered(subscriber, webhook, secret)

    def webhook_of(self, name: str) -> Webhook | None:
        with self._read() as uow:
            return uow.webhooks.get(name)

    def rotate(self, name: str) -> Registered:
        """A new secret; the old one signs too for `secret_overlap`, so receivers switch at leisure."""
        check_subscriber(name)
        now, secret = self._clock(), self._generate()
        with self._uow() as uow:
            subscriber, webhook = _both(uow.subscribers.get(name), uow.webhooks.get_for_update(name), name)
            webhook = webhook.rotated(secret, now, self.config.policy.secret_overlap)
            uow.webhooks.save(webhook)
        log.info("webhook.rotated", subscriber=name, previous_until=str(webhook.previous_until))
        return Registered(subscriber, webhook, secret)

    def set_enabled(self, name: str, enabled: bool, caller: Caller) -> SubscriberView:
        check_subscriber(name)
        now = self._clock()
        with self._uow() as uow:
            subscriber, webhook = _both(uow.subscribers.get(name), uow.webhooks.get_for_update(name), name)
            webhook = webhook.enabled() if enabled else webhook.disabled(now)
            uow.webhooks.save(webhook)
            head = uow.events.head()
        log.info(
            "webhook.enabled" if enabled else "webhook.disabled",
            subscriber=name,
            actor=caller.actor,
            request_id=caller.request_id,
        )
        return SubscriberView(subscriber, head, webhook)

    def subscribers(self) -> list[SubscriberView]:
        """Every subscriber with its lag and webhook (the console, `orderpay events subscribers`)."""
        with self._read() as uow:
            head = uow.events.head()
            hooks = {w.subscriber: w for w in uow.webhooks.all()}
            return [SubscriberView(s, head, hooks.get(s.name)) for s in uow.subscribers.all()]


def _both(subscriber: Subscriber | None, webhook: Webhook | None, name: str) -> tuple[Subscriber, Webhook]:
    if subscriber is None:
        raise SubscriberNotFoundError(f"subscriber {name!r} is not registered")
    if webhook is None:
        raise WebhookNotFoundError(f"subscriber {name!r} has no webhook (register it with a webhook_url)")
    return subscriber, webhook
