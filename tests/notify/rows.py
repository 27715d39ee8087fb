"""The notifications repository seen from a test: one unit of work per call, like the old store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw

from server.adapters.notification_store import ping
from server.domain.notification import NotificationStatus
from server.service.notifications import MAX_ATTEMPTS
from server.service.ports import UnitOfWorkFactory
from server.service.shapes import StoredNotification


@dataclass(frozen=True)
class Stored:
    created: bool
    status: str
    outcome: str


class NotificationRows:
    def __init__(self, db: pw.Database, uow: UnitOfWorkFactory) -> None:
        self._db, self._uow = db, uow

    def store(
        self, notification_id: str, event_type: str, headers: Mapping[str, str], body: str, now: datetime
    ) -> Stored:
        with self._uow() as uow:
            if uow.notifications.insert(notification_id, event_type, headers, body, now):
                return Stored(True, NotificationStatus.RECEIVED, "")
            row = uow.notifications.get(notification_id)
        assert row is not None
        return Stored(False, row.status, row.outcome)

    def get(self, notification_id: str) -> StoredNotification | None:
        with self._uow() as uow:
            return uow.notifications.get(notification_id)

    def mark_processed(self, notification_id: str, outcome: str, now: datetime) -> None:
        with self._uow() as uow:
            uow.notifications.finish(notification_id, NotificationStatus.PROCESSED, outcome, now)

    def mark_failed(self, notification_id: str, outcome: str, now: datetime) -> None:
        with self._uow() as uow:
            uow.notifications.finish(notification_id, NotificationStatus.FAILED, outcome, now)

    def claim_due(
        self, now: datetime, older_than_s: float, limit: int, *, max_attempts: int = MAX_ATTEMPTS
    ) -> list[StoredNotification]:
        """What the re-processing job does: list the due rows, then claim each by compare-and-set."""
        with self._uow() as uow:
            due = uow.notifications.due(now - timedelta(seconds=older_than_s), limit, max_attempts)
        claimed = []
        for row in due:
            with self._uow() as uow:
                if uow.notifications.claim(row, now):
                    claimed.append(row)
        return claimed

    def ping(self) -> bool:
        return ping(self._db)
