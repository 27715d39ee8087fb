"""Delivering webhooks (issue 19 item 4): lease the due ones, then POST each subscriber's backlog.

Delivery follows the feed: the subscriber's acknowledged position is the cursor, events go out in
position order, and a 2xx acknowledges one (the same `Ack` a Watch stream makes). A failure stops the
subscriber's run and sets its next attempt after a back-off; failing continuously for `disable_after`
disables the webhook until someone re-enables it. No transaction is open across an HTTP call: read,
POST, then one short unit of work records the outcome, only while this sender still holds the lease.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from server.domain.clock import Clock
from server.domain.feed import FeedFilter
from server.domain.webhooks import (
    POSITION_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TYPE_HEADER,
    Webhook,
    WebhookState,
    signature_header,
)
from server.service.feed_ports import StoredEvent
from server.service.ports import ReadFactory, UnitOfWorkFactory
from server.service.webhook_ports import SendOutcome, WebhookSender
from server.service.webhooks import WebhookConfig

log = structlog.get_logger("orderpay.webhooks")
Encode = Callable[[StoredEvent], bytes]  # a stored event as the JSON body (server.adapters.webhook_http)


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


class WebhookDelivery:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        read: ReadFactory,
        clock: Clock,
        config: WebhookConfig,
        sender: WebhookSender,
        encode: Encode,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._uow, self._read, self._clock, self.config = uow, read, clock, config
        self._sender, self._encode, self._rand = sender, encode, rand

    def close(self) -> None:
        self._sender.close()

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
            events = self._backlog(name)
            report.more = len(events) == self.config.batch
            webhook = claim.webhook
            for stored in events:
                if time.monotonic() - started > budget_s:
                    report.more = True
                    break
                now_is = self._post(webhook, claim.owner, stored, report)
                if now_is is None:
                    break
                webhook = now_is
        finally:
            with self._uow() as uow:
                uow.webhooks.release(name, claim.owner)
        return report

    def _backlog(self, name: str) -> list[StoredEvent]:
        with self._read() as uow:
            found = uow.subscribers.get(name)
            after = found.acked_position if found is not None else 0
            head = uow.events.head()
            return uow.events.read_after(after, head, FeedFilter(), self.config.batch) if head > after else []

    def _post(
        self, webhook: Webhook, owner: str, stored: StoredEvent, report: DeliveryReport
    ) -> Webhook | None:
        """One POST, then its outcome in one short unit of work; the webhook as it is now for the next
        POST (a rotation or a new URL applies from then on), or None to stop."""
        name = webhook.subscriber
        outcome = self._sender.post(webhook.url, *self._signed(webhook, stored))  # no transaction open
        now = self._clock()
        with self._uow() as uow:
            # Locked (PostgreSQL): a rotation or a switch-off committing meanwhile is neither lost nor
            # overwritten; the outcome applies to the webhook as it is now.
            current = uow.webhooks.get_for_update(name)
            if current is None or current.state is not WebhookState.ACTIVE:
                return None  # removed or switched off meanwhile
            after = (
                current.succeeded(now)
                if outcome.ok
                else current.failed(now, _error(outcome), self.config.policy, self._rand)
            )
            kept = uow.webhooks.save(after, owner)
            if kept and outcome.ok:
                uow.subscribers.ack(name, stored.position, now)
        if not kept:  # the lease ran out and another sender took over: it goes on from the ack
            return None
        if outcome.ok:
            report.delivered += 1
            report.positions.append(stored.position)
            return after
        report.failed, report.more = True, False
        emit = log.error if after.state is WebhookState.DISABLED else log.warning
        emit(
            "webhook.failed",
            subscriber=name,
            position=stored.position,
            error=after.last_error,
            failures=after.consecutive_failures,
            state=after.state.value,
            next_attempt_at=str(after.next_attempt_at),
        )
        return None

    def _signed(self, webhook: Webhook, stored: StoredEvent) -> tuple[bytes, dict[str, str]]:
        body = self._encode(stored)
        sent_at = self._clock()
        stamp = int(sent_at.timestamp())
        return body, {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: signature_header(webhook.signing_secrets(sent_at), stamp, body),
            POSITION_HEADER: str(stored.position),
            TYPE_HEADER: f"EVENT_TYPE_{stored.type}",  # as in the body (the proto enum name)
        }


def _error(outcome: SendOutcome) -> str:
    return outcome.error or f"HTTP {outcome.status}"
