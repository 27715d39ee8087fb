"""Signed webhooks for event-feed subscribers (issue 19 item 4): registering, switching on and off,
rotating the secret, and delivering a subscriber's backlog.

Delivery follows the feed: the subscriber's acknowledged position is the cursor, each event goes out in
position order, and a 2xx acknowledges it (the same `Ack` a Watch stream makes). A failure stops the
subscriber's run and sets the next attempt after a back-off; failing continuously for
`disable_after` disables the webhook until someone re-enables it. No transaction is open across an
HTTP call: the events are read, then each POST, then one short unit of work records its outcome.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from server.domain.clock import Clock
from server.domain.errors import SubscriberNotFoundError, WebhookNotFoundError
from server.domain.feed import FeedFilter, check_subscriber
from server.domain.webhooks import (
    POSITION_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TYPE_HEADER,
    DeliveryPolicy,
    UrlPolicy,
    Webhook,
    WebhookState,
    check_webhook_url,
    signature_header,
)
from server.service.context import Caller
from server.service.feed_ports import StoredEvent, Subscriber
from server.service.ports import ReadFactory, UnitOfWorkFactory
from server.service.webhook_ports import WebhookSender

log = structlog.get_logger("orderpay.webhooks")
Encode = Callable[[StoredEvent], bytes]  # a stored event as the JSON body (server.adapters.webhook_payload)


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


@dataclass(frozen=True)
class Claim:
    webhook: Webhook
    owner: str  # the lease's token: every write of this run is conditional on it


@dataclass
class DeliveryReport:
    subscriber: str
    delivered: int = 0
    failed: bool = False
    more: bool = False  # stopped with events left (a full batch, or the run's time budget)
    positions: list[int] = field(default_factory=list)


class WebhookService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read: ReadFactory,
        clock: Clock,
        config: WebhookConfig,
        *,
        sender: WebhookSender | None = None,
        encode: Encode | None = None,
        generate: Callable[[], str] = new_secret,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._uow, self._read, self._clock, self.config = uow, read, clock, config
        self._sender, self._encode = sender, encode
        self._generate, self._rand = generate, rand

    def with_sender(self, sender: WebhookSender, encode: Encode) -> WebhookService:
        return WebhookService(
            self._uow,
            self._read,
            self._clock,
            self.config,
            sender=sender,
            encode=encode,
            generate=self._generate,
            rand=self._rand,
        )

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
            webhook = uow.webhooks.get(name)
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
            subscriber, webhook = _both(uow.subscribers.get(name), uow.webhooks.get(name), name)
            webhook = webhook.rotated(secret, now, self.config.policy.secret_overlap)
            uow.webhooks.save(webhook)
        log.info("webhook.rotated", subscriber=name, previous_until=str(webhook.previous_until))
        return Registered(subscriber, webhook, secret)

    def set_enabled(self, name: str, enabled: bool, caller: Caller) -> SubscriberView:
        check_subscriber(name)
        now = self._clock()
        with self._uow() as uow:
            subscriber, webhook = _both(uow.subscribers.get(name), uow.webhooks.get(name), name)
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

    # --- the sender's side (server.jobs.webhooks) ----------------------------------------------------
    def claim(self, limit: int) -> list[Claim]:
        now, owner = self._clock(), secrets.token_hex(8)
        with self._read() as reads:  # most runs find nothing: no write transaction for them
            names = reads.webhooks.due(now, limit)
        if not names:
            return []
        with self._uow() as uow:
            won = uow.webhooks.lease(names, now, now + self.config.lease, owner)
        return [Claim(webhook, owner) for webhook in won]

    def oldest_due(self) -> datetime | None:
        with self._read() as uow:
            return uow.webhooks.oldest_due(self._clock())

    def deliver(self, claim: Claim) -> DeliveryReport:
        """POST the subscriber's unacknowledged events in order until one fails, the batch ends, or the
        run's time budget (the lease less two timeouts) is spent; then give the lease back."""
        name = claim.webhook.subscriber
        report = DeliveryReport(name)
        budget_s = self.config.lease.total_seconds() - 2 * self.config.timeout_s
        started = time.monotonic()
        try:
            with self._read() as uow:
                found = uow.subscribers.get(name)
                after = found.acked_position if found is not None else 0
                head = uow.events.head()
                events = (
                    uow.events.read_after(after, head, FeedFilter(), self.config.batch)
                    if head > after
                    else []
                )
            report.more = len(events) == self.config.batch
            for stored in events:
                if time.monotonic() - started > budget_s:
                    report.more = True
                    break
                if not self._post(claim, stored, report):
                    break
        finally:
            with self._uow() as uow:
                uow.webhooks.release(name, claim.owner)
        return report

    def _post(self, claim: Claim, stored: StoredEvent, report: DeliveryReport) -> bool:
        if self._sender is None or self._encode is None:
            raise RuntimeError("deliver() needs a sender: build it with with_sender()")
        webhook = claim.webhook
        body = self._encode(stored)
        sent_at = self._clock()
        stamp = int(sent_at.timestamp())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: signature_header(webhook.signing_secrets(sent_at), stamp, body),
            POSITION_HEADER: str(stored.position),
            TYPE_HEADER: f"EVENT_TYPE_{stored.type}",  # as in the body (the proto enum name)
        }
        outcome = self._sender.post(webhook.url, body, headers)  # no transaction open
        now = self._clock()
        with self._uow() as uow:
            current = uow.webhooks.get(webhook.subscriber)
            if current is None or current.state is not WebhookState.ACTIVE:
                return False  # removed or switched off meanwhile
            if outcome.ok:
                kept = uow.webhooks.save(current.succeeded(now), claim.owner)
                if kept:
                    uow.subscribers.ack(webhook.subscriber, stored.position, now)
            else:
                error = outcome.error or f"HTTP {outcome.status}"
                after = current.failed(now, error, self.config.policy, self._rand)
                kept = uow.webhooks.save(after, claim.owner)
        if not kept:  # the lease ran out and another sender took over: it goes on from the ack
            return False
        if outcome.ok:
            report.delivered += 1
            report.positions.append(stored.position)
            return True
        report.failed, report.more = True, False
        emit = log.error if after.state is WebhookState.DISABLED else log.warning
        emit(
            "webhook.failed",
            subscriber=webhook.subscriber,
            position=stored.position,
            error=after.last_error,
            failures=after.consecutive_failures,
            state=after.state.value,
            next_attempt_at=str(after.next_attempt_at),
        )
        return False


def _both(subscriber: Subscriber | None, webhook: Webhook | None, name: str) -> tuple[Subscriber, Webhook]:
    if subscriber is None:
        raise SubscriberNotFoundError(f"subscriber {name!r} is not registered")
    if webhook is None:
        raise WebhookNotFoundError(f"subscriber {name!r} has no webhook (register it with a webhook_url)")
    return subscriber, webhook
