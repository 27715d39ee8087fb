"""Raw WeChat Pay notifications, stored in the transaction that applies them.

Lifecycle of a row: `PROCESSED` (terminal, with the outcome) once applied or decided, in the same
transaction as the insert; `RECEIVED`/`FAILED` rows (from before one-transaction processing, or
written when processing broke) are re-processed by a job. `processed_at` holds the time of the
latest processing attempt until the row is PROCESSED; a claim bumps it, so a row being worked on is
not due again for `older_than_s`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import peewee as pw

from server.adapters.compiled import CompiledLookup, CompiledQuery
from server.adapters.tables import NotificationRow
from server.adapters.times import from_db_time, to_db_time
from server.domain.notification import NotificationStatus
from server.domain.routing import DEFAULT_ACCOUNT
from server.service.shapes import StoredNotification
from server.wxpay.notification import ACCOUNT_HEADER

STORED_HEADER_PREFIX = "wechatpay-"


def signed_headers_only(headers: Mapping[str, str]) -> dict[str, str]:
    """Only `Wechatpay-*` headers are kept: what re-verification needs, nothing about the client."""
    return {name: value for name, value in headers.items() if name.lower().startswith(STORED_HEADER_PREFIX)}


def stored_headers(row: NotificationRow) -> dict[str, str]:
    """The headers to verify a stored notification with again: the signature's, and the account whose
    keys verified it (migration 0015; `default` rows verify with the default account, as before)."""
    return _verifying_headers(row.headers, row.account)


def _verifying_headers(stored: str, account: str) -> dict[str, str]:
    headers: dict[str, str] = json.loads(stored)
    if account != DEFAULT_ACCOUNT:
        headers[ACCOUNT_HEADER] = account
    return headers


def ping(db: pw.Database) -> bool:
    """True when the database answers a trivial query (the readiness probe)."""
    try:
        with db.connection_context():
            db.execute_sql("SELECT 1")
    except pw.DatabaseError:
        return False
    return True


_N = NotificationRow
_PROCESSED = NotificationStatus.PROCESSED.value
Mark = Callable[[str], pw.Value]


def _insert(mark: Mark, _variant: tuple[str, ...]) -> pw.Query:
    # ON CONFLICT DO NOTHING (INSERT OR IGNORE): no savepoint needed; on PostgreSQL a concurrent
    # insert of the same id waits for that transaction, then inserts nothing.
    columns = ("notification_id", "event_type", "headers", "body", "status", "received_at", "account")
    return _N.insert({getattr(_N, c): mark(c) for c in columns}).on_conflict_ignore()


def _finish(mark: Mark, _variant: tuple[str, ...]) -> pw.Query:
    return _N.update(
        version=_N.version + 1,
        status=mark("status"),
        outcome=mark("outcome"),
        attempts=_N.attempts + 1,
        processed_at=mark("processed_at"),
    ).where((_N.notification_id == mark("notification_id")) & (_N.status != _PROCESSED))


# The delivery path's statements, composed once (server/adapters/compiled.py): Peewee composing them
# on every call was half of a notification's CPU.
_BY_ID = CompiledLookup(_N, _N.notification_id)
_INSERT = CompiledQuery(_N, _insert)
_FINISH = CompiledQuery(_N, _finish)


class PeeweeNotifications:
    """The notifications repository on the unit of work: it never opens a transaction itself."""

    def get(self, notification_id: str) -> StoredNotification | None:
        row = _BY_ID.one(notification_id)
        return None if row is None else _stored(row)

    def insert(
        self,
        notification_id: str,
        event_type: str,
        headers: Mapping[str, str],
        body: str,
        now: datetime,
        account: str | None = None,
    ) -> bool:
        values = {
            "notification_id": notification_id,
            "event_type": event_type,
            "headers": json.dumps(signed_headers_only(headers), sort_keys=True),
            "body": body,
            "status": NotificationStatus.RECEIVED.value,
            "received_at": to_db_time(now),
            "account": (account or DEFAULT_ACCOUNT)[:64],
        }
        inserted: int = _INSERT.execute(values).rowcount
        return inserted > 0

    def finish(self, notification_id: str, status: NotificationStatus, outcome: str, now: datetime) -> None:
        """PROCESSED is terminal: the first writer's outcome stands (a concurrent duplicate's is dropped)."""
        _FINISH.execute(
            {
                "notification_id": notification_id,
                "status": status.value,
                "outcome": outcome[:32],
                "processed_at": to_db_time(now),
            }
        )

    def record_attempt(self, notification_id: str, now: datetime) -> None:
        """A transient failure: the row stays due for re-processing, one more attempt on its count."""
        self._unfinished_update(
            notification_id, attempts=NotificationRow.attempts + 1, processed_at=to_db_time(now)
        )

    def due(self, cutoff: datetime, limit: int, max_attempts: int) -> list[StoredNotification]:
        at = to_db_time(cutoff)
        query = (
            NotificationRow.select()
            .where(
                NotificationRow.status.in_(
                    (NotificationStatus.RECEIVED.value, NotificationStatus.FAILED.value)
                )
                & (NotificationRow.attempts < max_attempts)
                & (NotificationRow.received_at <= at)
                & (NotificationRow.processed_at.is_null() | (NotificationRow.processed_at <= at))
            )
            .order_by(NotificationRow.received_at, NotificationRow.notification_id)
            .limit(limit)
        )
        return [_stored(row.__data__) for row in query]

    def claim(self, row: StoredNotification, now: datetime) -> bool:
        """Compare-and-set on the row's version; the claim pushes `processed_at` to now."""
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
        return bool(won)

    @staticmethod
    def _unfinished_update(notification_id: str, **values: Any) -> int:
        updated: int = (
            NotificationRow.update(version=NotificationRow.version + 1, **values)
            .where(
                (NotificationRow.notification_id == notification_id)
                & (NotificationRow.status != NotificationStatus.PROCESSED.value)
            )
            .execute()
        )
        return updated


def _stored(row: Mapping[str, Any]) -> StoredNotification:
    """From a row's column values (a compiled lookup's dict or a model's `__data__`)."""
    received_at = from_db_time(row["received_at"])
    if received_at is None:
        raise ValueError(f"notification {row['notification_id']} has no received_at")
    return StoredNotification(
        notification_id=row["notification_id"],
        event_type=row["event_type"],
        headers=_verifying_headers(row["headers"], row["account"]),
        body=row["body"],
        status=NotificationStatus(row["status"]),
        outcome=row["outcome"],
        attempts=row["attempts"],
        received_at=received_at,
        version=row["version"],
    )
