"""Webhooks in the database (table event_webhooks, migration 0011).

Claiming is a lease: `UPDATE ... WHERE lease is free` per candidate, re-checked by the database under
the row lock, so of two processes claiming together one wins and the other moves on; a crashed
sender's lease runs out and the next run takes over from the subscriber's acknowledged position.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import peewee as pw

from server.adapters.tables import EventLogHeadRow, EventSubscriberRow
from server.adapters.times import from_db_time, to_db_time
from server.adapters.webhook_tables import WebhookRow
from server.domain.webhooks import Webhook, WebhookState

_STATE_FIELDS = (
    "url",
    "secret",
    "state",
    "previous_secret",
    "previous_until",
    "consecutive_failures",
    "failing_since",
    "last_success_at",
    "last_error",
    "last_error_at",
    "next_attempt_at",
    "disabled_at",
)


class PeeweeWebhooks:
    def get(self, subscriber: str) -> Webhook | None:
        row = WebhookRow.get_or_none(WebhookRow.subscriber == subscriber)
        return None if row is None else _webhook(row)

    def get_for_update(self, subscriber: str) -> Webhook | None:
        query = WebhookRow.select().where(WebhookRow.subscriber == subscriber)
        row = (query.for_update() if _postgres() else query).first()
        return None if row is None else _webhook(row)

    def all(self) -> list[Webhook]:
        return [_webhook(row) for row in WebhookRow.select().order_by(WebhookRow.subscriber)]

    def create(self, webhook: Webhook, now: datetime) -> None:
        WebhookRow.insert(
            subscriber=webhook.subscriber, created_at=to_db_time(now), **_columns(webhook)
        ).execute()

    def save(self, webhook: Webhook, owner: str | None = None) -> bool:
        query = WebhookRow.update(**_columns(webhook)).where(WebhookRow.subscriber == webhook.subscriber)
        if owner is not None:
            query = query.where(WebhookRow.lease_owner == owner)
        return bool(query.execute())

    def delete(self, subscriber: str) -> None:
        doomed = WebhookRow.delete()  # type: ignore[misc]  # types-peewee: a generic classmethod
        doomed.where(WebhookRow.subscriber == subscriber).execute()

    def due(self, now: datetime, limit: int) -> list[str]:
        """ACTIVE webhooks, back-off over, not leased, whose subscriber has unacknowledged events."""
        at = to_db_time(now)
        head = EventLogHeadRow.select(EventLogHeadRow.position).where(EventLogHeadRow.id == 1)
        query = (
            WebhookRow.select(WebhookRow.subscriber)
            .join(EventSubscriberRow, on=EventSubscriberRow.name == WebhookRow.subscriber)
            .where(
                (WebhookRow.state == WebhookState.ACTIVE.value)
                & _free(at)
                & (WebhookRow.next_attempt_at.is_null() | (WebhookRow.next_attempt_at <= at))
                & (EventSubscriberRow.acked_position < head)
            )
            .order_by(WebhookRow.subscriber)
            .limit(limit)
        )
        return [row.subscriber for row in query]

    def lease(self, names: list[str], now: datetime, until: datetime, owner: str) -> list[Webhook]:
        """One UPDATE each: the free-lease condition is re-checked under the row lock, so of two
        processes leasing together one wins and the other moves on."""
        won = []
        for name in names:
            taken = (
                WebhookRow.update(lease_owner=owner, lease_until=to_db_time(until))
                .where(
                    (WebhookRow.subscriber == name)
                    & _free(to_db_time(now))
                    & (WebhookRow.state == WebhookState.ACTIVE.value)
                )
                .execute()
            )
            if taken:
                won.append(name)
        if not won:
            return []
        return [_webhook(row) for row in WebhookRow.select().where(WebhookRow.subscriber.in_(won))]

    def release(self, subscriber: str, owner: str) -> None:
        WebhookRow.update(lease_owner=None, lease_until=None).where(
            (WebhookRow.subscriber == subscriber) & (WebhookRow.lease_owner == owner)
        ).execute()

    def oldest_due(self, now: datetime) -> datetime | None:
        """The earliest retry that is overdue (the job's lag gauge); None when none is."""
        value = (
            WebhookRow.select(pw.fn.MIN(WebhookRow.next_attempt_at))
            .where(
                (WebhookRow.state == WebhookState.ACTIVE.value)
                & (WebhookRow.next_attempt_at <= to_db_time(now))
            )
            .scalar()
        )
        return from_db_time(value)


def _postgres() -> bool:
    db: Any = WebhookRow._meta.database
    return isinstance(db.obj if isinstance(db, pw.DatabaseProxy) else db, pw.PostgresqlDatabase)


def _free(at: datetime | None) -> Any:
    return WebhookRow.lease_until.is_null() | (WebhookRow.lease_until < at)


def _columns(webhook: Webhook) -> dict[str, object]:
    values = {name: getattr(webhook, name) for name in _STATE_FIELDS}
    values["state"] = webhook.state.value
    for name in (
        "previous_until",
        "failing_since",
        "last_success_at",
        "last_error_at",
        "next_attempt_at",
        "disabled_at",
    ):
        values[name] = to_db_time(values[name])
    return values


def _webhook(row: WebhookRow) -> Webhook:
    return Webhook(
        subscriber=row.subscriber,
        url=row.url,
        secret=row.secret,
        state=WebhookState(row.state),
        previous_secret=row.previous_secret,
        previous_until=from_db_time(row.previous_until),
        consecutive_failures=int(row.consecutive_failures),
        failing_since=from_db_time(row.failing_since),
        last_success_at=from_db_time(row.last_success_at),
        last_error=row.last_error or "",
        last_error_at=from_db_time(row.last_error_at),
        next_attempt_at=from_db_time(row.next_attempt_at),
        disabled_at=from_db_time(row.disabled_at),
    )
