"""Raw WeChat Pay notifications, stored before they are processed.

Lifecycle of a row: `RECEIVED` on insert; `PROCESSED` (terminal, with the outcome) once applied or
decided; `FAILED` when processing broke unexpectedly. RECEIVED and FAILED rows are re-processed by a job.
`processed_at` holds the time of the latest processing attempt until the row is PROCESSED, when it
becomes final: a claim bumps it, so a row being worked on is not due again for `older_than_s`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from server.adapters.repositories import from_db_time, to_db_time
from server.adapters.tables import NotificationRow
from server.service.notifications import (
    FAILED,
    PROCESSED,
    RECEIVED,
    StoredNotification,
    StoreResult,
)

STORED_HEADER_PREFIX = "wechatpay-"
# A row that still fails after this many attempts stays for a person to look at, not for the job.
MAX_ATTEMPTS = 20
Transaction = Callable[[], AbstractContextManager[Any]]


def signed_headers_only(headers: Mapping[str, str]) -> dict[str, str]:
    """Only `Wechatpay-*` headers are kept: what re-verification needs, nothing about the client."""
    return {name: value for name, value in headers.items() if name.lower().startswith(STORED_HEADER_PREFIX)}


class NotificationStore:
    """`transaction` opens one transaction (the UoW factory fits, sharing its SQLite writer queue)."""

    def __init__(self, db: pw.Database, transaction: Transaction | None = None) -> None:
        self._db = db
        self._transaction: Transaction = transaction or self._own_transaction

    @contextmanager
    def _own_transaction(self) -> Iterator[None]:
        with self._db.connection_context(), self._db.atomic():
            yield

    def ping(self) -> bool:
        """True when the database answers a trivial query (the readiness probe)."""
        try:
            with self._db.connection_context():
                self._db.execute_sql("SELECT 1")
        except pw.DatabaseError:
            return False
        return True

    def store(
        self, notification_id: str, event_type: str, headers: Mapping[str, str], body: str, now: datetime
    ) -> StoreResult:
        """Insert first; a unique-index conflict means another delivery stored it already."""
        try:
            with self._transaction():
                NotificationRow.insert(
                    notification_id=notification_id,
                    event_type=event_type,
                    headers=json.dumps(signed_headers_only(headers), sort_keys=True),
                    body=body,
                    status=RECEIVED,
                    received_at=to_db_time(now),
                ).execute()
        except pw.IntegrityError:
            with self._db.connection_context():  # a committed row: read it outside the writers' queue
                row = NotificationRow.get(NotificationRow.notification_id == notification_id)
            return StoreResult(created=False, status=row.status, outcome=row.outcome)
        return StoreResult(created=True, status=RECEIVED, outcome="")

    def get(self, notification_id: str) -> StoredNotification | None:
        with self._db.connection_context():  # committed data only: no writer queue, no transaction
            row = NotificationRow.get_or_none(NotificationRow.notification_id == notification_id)
        return None if row is None else _stored(row)

    def mark_processed(self, notification_id: str, outcome: str, now: datetime) -> None:
        """Terminal: the first writer's outcome stands (a concurrent duplicate's is dropped)."""
        self._finish(notification_id, PROCESSED, outcome, now)

    def mark_failed(self, notification_id: str, outcome: str, now: datetime) -> None:
        self._finish(notification_id, FAILED, outcome, now)

    def record_attempt(self, notification_id: str, now: datetime) -> None:
        """A transient failure: the row stays due for re-processing, one more attempt on its count."""
        with self._transaction():
            self._unfinished_update(
                notification_id, attempts=NotificationRow.attempts + 1, processed_at=to_db_time(now)
            )

    def claim_due(
        self, now: datetime, older_than_s: float, limit: int, *, max_attempts: int = MAX_ATTEMPTS
    ) -> list[StoredNotification]:
        """RECEIVED/FAILED rows untouched for `older_than_s`, each claimed by compare-and-set on version.

        Two processes may list the same rows; only one wins each row's version, and the claim pushes
        `processed_at` to now so the row is not due again while it is being worked on.
        """
        cutoff = to_db_time(now - timedelta(seconds=older_than_s))
        candidates = self._due(cutoff, limit, max_attempts)
        claimed: list[StoredNotification] = []
        for row in candidates:
            with self._transaction():
                won = (
                    NotificationRow.update(
                        version=NotificationRow.version + 1,
                        attempts=NotificationRow.attempts + 1,
                        processed_at=to_db_time(now),
                    )
                    .where(
                        (NotificationRow.notification_id == row.notification_id)
                        & (NotificationRow.version == row.version)
                    )
                    .execute()
                )
            if won:
                claimed.append(_stored(row))
        return claimed

    def _due(self, cutoff: datetime | None, limit: int, max_attempts: int) -> list[NotificationRow]:
        with self._transaction():
            query = (
                NotificationRow.select()
                .where(
                    NotificationRow.status.in_((RECEIVED, FAILED))
                    & (NotificationRow.attempts < max_attempts)
                    & (NotificationRow.received_at <= cutoff)
                    & (NotificationRow.processed_at.is_null() | (NotificationRow.processed_at <= cutoff))
                )
                .order_by(NotificationRow.received_at, NotificationRow.notification_id)
                .limit(limit)
            )
            return list(query)

    def _finish(self, notification_id: str, status: str, outcome: str, now: datetime) -> None:
        with self._transaction():
            self._unfinished_update(
                notification_id,
                status=status,
                outcome=outcome[:32],
                attempts=NotificationRow.attempts + 1,
                processed_at=to_db_time(now),
            )

    @staticmethod
    def _unfinished_update(notification_id: str, **values: Any) -> int:
        updated: int = (
            NotificationRow.update(version=NotificationRow.version + 1, **values)
            .where(
                (NotificationRow.notification_id == notification_id) & (NotificationRow.status != PROCESSED)
            )
            .execute()
        )
        return updated


def _stored(row: NotificationRow) -> StoredNotification:
    received_at = from_db_time(row.received_at)
    if received_at is None:
        raise ValueError(f"notification {row.notification_id} has no received_at")
    return StoredNotification(
        notification_id=row.notification_id,
        event_type=row.event_type,
        headers=json.loads(row.headers),
        body=row.body,
        status=row.status,
        outcome=row.outcome,
        attempts=row.attempts,
        received_at=received_at,
        version=row.version,
    )
