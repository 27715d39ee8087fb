"""The ports of signed webhooks (issue 19 item 4): the store, and the HTTP sender."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from server.domain.webhooks import Webhook


class WebhookReads(Protocol):
    def get(self, subscriber: str) -> Webhook | None: ...
    def due(self, now: datetime, limit: int) -> list[str]:
        """ACTIVE webhooks whose back-off is over, not leased, with unacknowledged events."""
        ...

    def all(self) -> list[Webhook]: ...
    def oldest_due(self, now: datetime) -> datetime | None: ...


class WebhookStore(WebhookReads, Protocol):
    def get_for_update(self, subscriber: str) -> Webhook | None:
        """As `get`, the row locked to the transaction's end (PostgreSQL; SQLite has one writer)."""
        ...

    def create(self, webhook: Webhook, now: datetime) -> None: ...
    def save(self, webhook: Webhook, owner: str | None = None) -> bool:
        """Store the webhook's state; with `owner`, only while that sender holds the lease (False: it
        lost it, and must stop)."""
        ...

    def delete(self, subscriber: str) -> None: ...
    def lease(self, names: list[str], now: datetime, until: datetime, owner: str) -> list[Webhook]:
        """Lease those still free (another sender may have won some): the ones this sender got."""
        ...

    def release(self, subscriber: str, owner: str) -> None: ...


@dataclass(frozen=True)
class SendOutcome:
    status: int | None  # the HTTP status; None when no answer came (refused, timed out, TLS)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendOutcome:
        """One POST with the sender's timeouts; never raises for what the receiver did."""
        ...

    def close(self) -> None:
        """Close the kept-alive connections."""
        ...
