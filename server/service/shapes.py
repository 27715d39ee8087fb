"""The shapes the ports speak in (rows in, results out) where no layer below owns them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.domain.fulfilment import GrantState
from server.domain.notification import NotificationStatus


@dataclass(frozen=True)
class Batch:
    """One run of the fulfilment worker: how many ledger rows it claimed."""

    claimed: int


@dataclass(frozen=True)
class JobResult:
    items: int  # rows claimed and worked on
    errors: int = 0  # of those, how many failed (each is retried later)
    more: bool = False  # the batch was full: run again without waiting

    @property
    def outcome(self) -> str:
        return "error" if self.errors else "ok"


@dataclass(frozen=True)
class Cursor:
    """Keyset position for ListOrders: strictly older than (created_at, seq)."""

    created_at: datetime
    seq: int


@dataclass(frozen=True)
class AuditEvent:
    order_id: str
    field: str
    from_value: str | None
    to_value: str
    cause: str
    actor: str
    request_id: str


@dataclass(frozen=True)
class StoredNotification:
    notification_id: str
    event_type: str
    headers: dict[str, str]
    body: str
    status: NotificationStatus
    outcome: str
    attempts: int
    received_at: datetime
    version: int


@dataclass(frozen=True)
class Grant:
    order_id: str
    user_id: str
    state: GrantState
    days: int


@dataclass(frozen=True)
class PurgeReport:
    orders: int
    events: int


class OrderInsertConflict(Exception):  # noqa: N818 - a signal between adapter and service, not an error
    """The insert hit a unique index; the service reads the winner."""
