"""Inbound WeChat Pay notifications: verify, store, apply, answer (SPEC §4).

`receive` runs the checks in SPEC §4's order (`parse_notification`), then stores the raw notification
(unique on its id) before anything is applied, so a crash after the store loses nothing:
`reprocess_pending` picks up what was stored but never finished. Application is delegated to the
payment and refund services, whose `apply_*` are idempotent; a duplicate is therefore harmless even
when two deliveries race past the PROCESSED check.

This module never logs the body, the signature or the decrypted resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import structlog

from server.domain.clock import Clock
from server.domain.errors import DomainError
from server.domain.notification import MalformedError, Notification, NotificationRejected
from server.domain.operations import NotificationNotFoundError
from server.service.errors import TransientError
from server.service.ports import NotificationParser

SOURCE: Final = "notify"
TRANSACTION_SUCCESS: Final = "TRANSACTION.SUCCESS"
REFUND_PREFIX: Final = "REFUND."
UNHANDLED_EVENT: Final = "unhandled_event"
DUPLICATE: Final = "duplicate"
TRANSIENT: Final = "transient"
ERROR: Final = "error"
INVALID_RESOURCE: Final = "invalid_resource"
# Limits of the NotificationRow columns; a longer value is not a WeChat notification.
MAX_ID_LENGTH: Final = 64
MAX_EVENT_TYPE_LENGTH: Final = 32
RECEIVED: Final = "RECEIVED"
PROCESSED: Final = "PROCESSED"
FAILED: Final = "FAILED"
# Rejections answer 4xx; signature-class failures say "not authenticated", the rest "bad request".
_REJECTION_STATUS: Final = {"stale": 401, "unknown_serial": 401, "bad_signature": 401}
# Acknowledged outcomes that need a person's attention.
ALARMING_OUTCOMES: Final = frozenset(
    {"unknown_order", "identity_mismatch", "amount_mismatch", "refund_unknown", "paid_after_close"}
)

log = structlog.get_logger("orderpay.notify")


@dataclass(frozen=True)
class StoredNotification:
    notification_id: str
    event_type: str
    headers: dict[str, str]
    body: str
    status: str  # RECEIVED | PROCESSED | FAILED
    outcome: str
    attempts: int
    received_at: datetime
    version: int


@dataclass(frozen=True)
class StoreResult:
    """What storing found: `created` is False when the id was already there (in `status`)."""

    created: bool
    status: str
    outcome: str


class NotificationLog(Protocol):
    """The raw-notification table (server.adapters.notification_store.NotificationStore)."""

    def store(
        self, notification_id: str, event_type: str, headers: Mapping[str, str], body: str, now: datetime
    ) -> StoreResult: ...
    def get(self, notification_id: str) -> StoredNotification | None: ...
    def mark_processed(self, notification_id: str, outcome: str, now: datetime) -> None: ...
    def mark_failed(self, notification_id: str, outcome: str, now: datetime) -> None: ...
    def record_attempt(self, notification_id: str, now: datetime) -> None: ...
    def claim_due(self, now: datetime, older_than_s: float, limit: int) -> list[StoredNotification]: ...


class ApplyOutcome(Protocol):
    @property
    def outcome(self) -> str: ...


class TransactionApplier(Protocol):
    def apply_transaction(self, resource: dict[str, Any], *, source: str) -> ApplyOutcome: ...


class RefundApplier(Protocol):
    def apply_refund(self, resource: dict[str, Any], *, source: str) -> ApplyOutcome: ...


@dataclass(frozen=True)
class Receipt:
    """The answer to one delivery, plus the fields of its canonical log line (no secrets)."""

    status_code: int
    outcome: str
    message: str = ""
    notification_id: str = ""
    event_type: str = ""
    out_trade_no: str = ""

    @property
    def acknowledged(self) -> bool:
        return self.status_code < 300


class NotificationService:
    def __init__(
        self,
        *,
        store: NotificationLog,
        clock: Clock,
        parse: NotificationParser,
        payments: TransactionApplier,
        refunds: RefundApplier,
        transient_faults: tuple[type[Exception], ...] = (),
    ) -> None:
        """`transient_faults`: infrastructure errors (database down or busy) that, like TransientError,
        answer 5xx so WeChat retries, and leave the row due for `reprocess_pending`."""
        self._transient: tuple[type[Exception], ...] = (TransientError, *transient_faults)
        self._store = store
        self._clock = clock
        self._parse_signed = parse
        self._payments = payments
        self._refunds = refunds

    def receive(self, headers: Mapping[str, str], body: bytes) -> Receipt:
        """One delivery of `POST /wxpay/notify`: 204 when applied or known, 4xx rejected, 5xx retry."""
        now = self._clock()
        try:
            note = self._parse(headers, body, now)
        except NotificationRejected as exc:
            return Receipt(_REJECTION_STATUS.get(exc.outcome, 400), exc.outcome, exc.message)
        receipt = Receipt(
            204,
            "",
            notification_id=note.id,
            event_type=note.event_type,
            out_trade_no=_text(note.resource.get("out_trade_no")),
        )
        try:
            return _with_outcome(receipt, self._store_and_apply(note, headers, body, now))
        except self._transient as exc:
            self._record_attempt(note.id, now)
            return _with_outcome(
                receipt, TRANSIENT, 503, f"temporarily unable to process: {type(exc).__name__}"
            )
        except DomainError as exc:  # signed, but the resource itself is refused (e.g. lacks amount)
            self._mark_processed(note.id, now, INVALID_RESOURCE)
            return _with_outcome(receipt, INVALID_RESOURCE, 400, f"resource refused: {exc.reason}")
        except Exception as exc:  # any bug must still be answered (5xx) and the row kept
            log.exception(
                "notification processing failed", notification_id=note.id, error_type=type(exc).__name__
            )
            self._mark_failed(note.id, now)
            return _with_outcome(receipt, ERROR, 500, "internal error")

    def reprocess_pending(self, older_than_s: float, limit: int) -> int:
        """Finish stored notifications left RECEIVED/FAILED; returns how many are now PROCESSED.

        Safe with several processes: each row is claimed by compare-and-set before it is applied.
        """
        now = self._clock()
        finished = 0
        for row in self._store.claim_due(now, older_than_s, limit):
            finished += self._reprocess(row, now)
        return finished

    # --- issue 13: an operator re-runs one stored notification (server.service.operations) ---------
    def replay(self, notification_id: str) -> Receipt:
        """The stored raw delivery through the same verify-and-apply path, as of its receipt: idempotent
        (applying is), so a second replay answers `duplicate` and changes nothing."""
        row = self._store.get(notification_id)
        if row is None:
            raise NotificationNotFoundError(f"notification {notification_id!r} not found")
        try:
            note = self._parse(row.headers, row.body.encode("utf-8"), row.received_at)
        except NotificationRejected as exc:
            return Receipt(_REJECTION_STATUS.get(exc.outcome, 400), exc.outcome, exc.message, notification_id)
        outcome = self._apply(note)
        if row.status != PROCESSED:
            self._store.mark_processed(notification_id, outcome, self._clock())
        out_trade_no = _text(note.resource.get("out_trade_no"))
        return Receipt(204, outcome, "", note.id, note.event_type, out_trade_no)

    def _parse(self, headers: Mapping[str, str], body: bytes, now: datetime) -> Notification:
        note = self._parse_signed(headers, body, now.timestamp())
        if len(note.id) > MAX_ID_LENGTH or len(note.event_type) > MAX_EVENT_TYPE_LENGTH:
            raise MalformedError("notification id or event_type too long")
        if not _is_utf8(body):
            raise MalformedError("notification body is not UTF-8")
        return note

    def _store_and_apply(
        self, note: Notification, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> str:
        known = self._store.get(note.id)  # a redelivery of a finished notification costs no write
        if known is not None and known.status == PROCESSED:
            return DUPLICATE
        stored = self._store.store(note.id, note.event_type, headers, body.decode("utf-8"), now)
        if not stored.created and stored.status == PROCESSED:
            return DUPLICATE
        outcome = self._apply(note)
        self._store.mark_processed(note.id, outcome, self._clock())
        return outcome

    def _apply(self, note: Notification) -> str:
        if note.event_type == TRANSACTION_SUCCESS:
            return self._payments.apply_transaction(note.resource, source=SOURCE).outcome
        if note.event_type.startswith(REFUND_PREFIX):
            return self._refunds.apply_refund(note.resource, source=SOURCE).outcome
        return UNHANDLED_EVENT

    def _reprocess(self, row: StoredNotification, now: datetime) -> int:
        fields = {"notification_id": row.notification_id, "event_type": row.event_type}
        try:
            # Verified when stored; checking again "as of receipt" costs one RSA verify and means a
            # tampered row can never be applied.
            note = self._parse(row.headers, row.body.encode("utf-8"), row.received_at)
            outcome = self._apply(note)
            self._store.mark_processed(row.notification_id, outcome, self._clock())
        except self._transient as exc:
            log.warning("notification re-processing deferred", error_type=type(exc).__name__, **fields)
            return 0
        except DomainError as exc:
            log.error("stored notification refused", reason=exc.reason, **fields)  # noqa: TRY400
            self._mark_processed(row.notification_id, now, INVALID_RESOURCE)
            return 1
        except NotificationRejected as exc:
            # An expected rejection (e.g. the key was rotated out): its traceback says nothing.
            log.error("stored notification no longer verifies", outcome=exc.outcome, **fields)  # noqa: TRY400
            self._mark_failed(row.notification_id, now, exc.outcome)
            return 0
        except Exception as exc:  # one bad row must not stop the batch
            log.exception("notification re-processing failed", error_type=type(exc).__name__, **fields)
            self._mark_failed(row.notification_id, now)
            return 0
        log.info("notification re-processed", outcome=outcome, **fields)
        return 1

    def _record_attempt(self, notification_id: str, now: datetime) -> None:
        # The database is the fault; the row (if stored) is RECEIVED and due anyway.
        with suppress(*self._transient):
            self._store.record_attempt(notification_id, now)

    def _mark_processed(self, notification_id: str, now: datetime, outcome: str) -> None:
        with suppress(*self._transient):
            self._store.mark_processed(notification_id, outcome, now)

    def _mark_failed(self, notification_id: str, now: datetime, outcome: str = ERROR) -> None:
        # If even this fails the row stays RECEIVED, which the re-processing job retries the same.
        with suppress(*self._transient):
            self._store.mark_failed(notification_id, outcome, now)


def _with_outcome(receipt: Receipt, outcome: str, status_code: int = 204, message: str = "") -> Receipt:
    return Receipt(
        status_code,
        outcome,
        message,
        notification_id=receipt.notification_id,
        event_type=receipt.event_type,
        out_trade_no=receipt.out_trade_no,
    )


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _text(value: object) -> str:
    return value[:64] if isinstance(value, str) else ""
