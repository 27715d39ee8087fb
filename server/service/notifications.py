"""Inbound WeChat Pay notifications: verify, then store, apply and mark processed in ONE transaction.

`receive` runs the checks in their fixed order (`parse_notification`). A verified notification is then
inserted (unique on its id), applied by the payment or refund service and marked PROCESSED in one
unit of work: a failed apply rolls all of it back and the answer asks WeChat to retry, so WeChat's
retry carries it; a redelivery of a processed notification is answered from a read, with no write.
The apply is idempotent, so a duplicate is harmless even when two deliveries race.

The answer is a `Disposition`; the sidecar (server.notify.views) maps it to HTTP.
This module never logs the body, the signature or the decrypted resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

import structlog

from server.domain.clock import Clock
from server.domain.errors import DomainError
from server.domain.notification import MalformedError, Notification, NotificationRejected, NotificationStatus
from server.domain.operations import NotificationNotFoundError
from server.domain.outcomes import ApplyOutcome, NotificationOutcome
from server.domain.provider import NOTIFY_SOURCE, RefundReport, TransactionReport
from server.service.errors import TransientError
from server.service.ports import (
    NotificationParser,
    ReadFactory,
    RefundApplier,
    TransactionApplier,
    UnitOfWork,
    UnitOfWorkFactory,
)
from server.service.retry import retry_on_conflict
from server.service.shapes import StoredNotification

SOURCE: Final = NOTIFY_SOURCE
# Limits of the NotificationRow columns; a longer value is not a WeChat notification.
MAX_ID_LENGTH: Final = 64
MAX_EVENT_TYPE_LENGTH: Final = 32
# A row that still fails after this many attempts stays for a person to look at, not for the job.
MAX_ATTEMPTS: Final = 20
# Acknowledged outcomes that need a person's attention.
ALARMING_OUTCOMES: Final = frozenset(o.value for o in ApplyOutcome if o.alarming)

log = structlog.get_logger("orderpay.notify")


class Disposition(StrEnum):
    """What to tell WeChat Pay about one delivery."""

    ACK = "ack"  # applied, known, or deliberately ignored: do not send it again
    REJECT_AUTH = "reject_auth"  # failed signature-class checks
    REJECT_MALFORMED = "reject_malformed"  # verified (or not) but not a notification we accept
    RETRY = "retry"  # cannot decide now (database busy, state not ready): send it again
    FAIL = "fail"  # a bug: send it again; the row is kept FAILED for the re-processing job


@dataclass(frozen=True)
class Receipt:
    """The answer to one delivery, plus the fields of its canonical log line (no secrets)."""

    disposition: Disposition
    outcome: str
    message: str = ""
    notification_id: str = ""
    event_type: str = ""
    out_trade_no: str = ""

    @property
    def acknowledged(self) -> bool:
        return self.disposition is Disposition.ACK


class NotificationService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        parse: NotificationParser,
        payments: TransactionApplier,
        refunds: RefundApplier,
        read: ReadFactory | None = None,
        transient_faults: tuple[type[Exception], ...] = (),
        accounts: tuple[str, ...] = ("default",),
    ) -> None:
        """`transient_faults`: infrastructure errors (database down or busy) that, like TransientError,
        answer "retry" so WeChat sends the notification again. `accounts`: the configured merchant
        accounts, the default first (the sidecar's metrics label notifications with them)."""
        self.accounts = accounts
        self._transient: tuple[type[Exception], ...] = (TransientError, *transient_faults)
        self._uow = uow
        self._read: ReadFactory = read or uow
        self._clock = clock
        self._parse_signed = parse
        self._payments = payments
        self._refunds = refunds

    def receive(self, headers: Mapping[str, str], body: bytes) -> Receipt:
        """One delivery of `POST /wxpay/notify`."""
        now = self._clock()
        try:
            note = self._parse(headers, body, now)
        except NotificationRejected as exc:
            return _rejected(exc)
        receipt = Receipt(
            Disposition.ACK,
            "",
            notification_id=note.id,
            event_type=note.event_type,
            out_trade_no=note.report.out_trade_no[:64] if note.report is not None else "",
        )
        try:
            return _with(receipt, Disposition.ACK, self._store_and_apply(note, headers, body, now))
        except self._transient as exc:
            return _with(
                receipt,
                Disposition.RETRY,
                NotificationOutcome.TRANSIENT,
                f"temporarily unable to process: {type(exc).__name__}",
            )
        except DomainError as exc:  # signed, but the resource itself is refused (e.g. lacks amount)
            self._keep(
                note, headers, body, now, NotificationStatus.PROCESSED, NotificationOutcome.INVALID_RESOURCE
            )
            return _with(
                receipt,
                Disposition.REJECT_MALFORMED,
                NotificationOutcome.INVALID_RESOURCE,
                f"resource refused: {exc.reason}",
            )
        except Exception as exc:  # any bug must still be answered, and the row kept for the job
            log.exception("notification.failed", notification_id=note.id, error_type=type(exc).__name__)
            self._keep(note, headers, body, now, NotificationStatus.FAILED, NotificationOutcome.ERROR)
            return _with(receipt, Disposition.FAIL, NotificationOutcome.ERROR, "internal error")

    def reprocess_pending(self, older_than_s: float, limit: int) -> int:
        """Finish stored notifications left RECEIVED/FAILED; returns how many are now PROCESSED.

        Safe with several processes: each row is claimed by compare-and-set before it is applied.
        """
        now = self._clock()
        with self._uow() as uow:
            due = uow.notifications.due(now - timedelta(seconds=older_than_s), limit, MAX_ATTEMPTS)
        finished = 0
        for row in due:
            with self._uow() as uow:
                won = uow.notifications.claim(row, now)
            if won:
                finished += self._reprocess(row, now)
        return finished

    # --- issue 13: an operator re-runs one stored notification (server.service.operations) ---------
    def replay(self, notification_id: str) -> Receipt:
        """The stored raw delivery through the same verify-and-apply path, as of its receipt: idempotent
        (applying is), so a second replay answers `duplicate` and changes nothing."""
        with self._read() as reader:
            row = reader.notifications.get(notification_id)
        if row is None:
            raise NotificationNotFoundError(f"notification {notification_id!r} not found")
        try:
            note = self._parse(row.headers, row.body.encode("utf-8"), row.received_at)
        except NotificationRejected as exc:
            return _rejected(exc, notification_id)

        def attempt() -> str:
            with self._uow() as uow:
                outcome = self._apply(uow, note)
                if row.status != NotificationStatus.PROCESSED:
                    uow.notifications.finish(
                        notification_id, NotificationStatus.PROCESSED, outcome, self._clock()
                    )
            return outcome

        outcome = retry_on_conflict(attempt, "replaying the notification")
        out_trade_no = note.report.out_trade_no[:64] if note.report is not None else ""
        return Receipt(Disposition.ACK, outcome, "", note.id, note.event_type, out_trade_no)

    def describe(self, headers: Mapping[str, str], body: str, received_at: datetime) -> dict[str, str] | None:
        """Which order and refund a stored notification is about (the operator's timeline), or None when
        it no longer verifies. Decrypted here, so the keys stay behind the parser."""
        try:
            note = self._parse(headers, body.encode("utf-8"), received_at)
        except (NotificationRejected, ValueError):
            return None
        report = note.report
        if isinstance(report, TransactionReport):
            paid = report.payment
            transaction_id = paid.transaction_id if paid is not None else ""
            return {
                "out_trade_no": report.out_trade_no,
                "out_refund_no": "",
                "transaction_id": transaction_id,
            }
        if isinstance(report, RefundReport):
            return {
                "out_trade_no": report.out_trade_no,
                "out_refund_no": report.out_refund_no,
                "transaction_id": "",
            }
        return None

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
        with self._read() as reader:  # a redelivery of a finished notification costs no write
            known = reader.notifications.get(note.id)
        if known is not None and known.status == NotificationStatus.PROCESSED:
            return NotificationOutcome.DUPLICATE

        def attempt() -> str:
            with self._uow() as uow:  # the unit of work runs the events' reactions once it committed
                text = body.decode("utf-8")
                if not uow.notifications.insert(note.id, note.event_type, headers, text, now, note.account):
                    stored = uow.notifications.get(note.id)
                    if stored is not None and stored.status == NotificationStatus.PROCESSED:
                        return NotificationOutcome.DUPLICATE
                outcome = self._apply(uow, note)
                uow.notifications.finish(note.id, NotificationStatus.PROCESSED, outcome, self._clock())
            return outcome

        return retry_on_conflict(attempt, "applying the notification")

    def _apply(self, uow: UnitOfWork, note: Notification) -> ApplyOutcome | NotificationOutcome:
        # The account whose URL (and keys) it came in on must be the order's (issue 18).
        account = note.account
        if isinstance(note.report, TransactionReport):
            return self._payments.apply_in(uow, note.report, source=SOURCE, account=account).outcome
        if isinstance(note.report, RefundReport):
            return self._refunds.apply_in(uow, note.report, source=SOURCE, account=account).outcome
        return NotificationOutcome.UNHANDLED_EVENT

    def _reprocess(self, row: StoredNotification, now: datetime) -> int:
        fields = {"notification_id": row.notification_id, "event_type": row.event_type}
        try:
            # Verified when stored; checking again "as of receipt" costs one RSA verify and means a
            # tampered row can never be applied.
            note = self._parse(row.headers, row.body.encode("utf-8"), row.received_at)

            def attempt() -> str:
                with self._uow() as uow:
                    outcome = self._apply(uow, note)
                    uow.notifications.finish(
                        row.notification_id, NotificationStatus.PROCESSED, outcome, self._clock()
                    )
                return outcome

            outcome = retry_on_conflict(attempt, "re-processing the notification")
        except self._transient as exc:
            log.warning("notification.reprocess_deferred", error_type=type(exc).__name__, **fields)
            return 0
        except DomainError as exc:
            log.error("notification.stored_refused", reason=exc.reason, **fields)  # noqa: TRY400
            self._finish(
                row.notification_id, now, NotificationStatus.PROCESSED, NotificationOutcome.INVALID_RESOURCE
            )
            return 1
        except NotificationRejected as exc:
            # An expected rejection (e.g. the key was rotated out): its traceback says nothing.
            log.error("notification.stored_unverifiable", outcome=exc.outcome, **fields)  # noqa: TRY400
            self._finish(row.notification_id, now, NotificationStatus.FAILED, exc.outcome)
            return 0
        except Exception as exc:  # one bad row must not stop the batch
            log.exception("notification.reprocess_failed", error_type=type(exc).__name__, **fields)
            self._finish(row.notification_id, now, NotificationStatus.FAILED, NotificationOutcome.ERROR)
            return 0
        log.info("notification.reprocessed", outcome=outcome, **fields)
        return 1

    def _keep(
        self,
        note: Notification,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
        status: NotificationStatus,
        outcome: str,
    ) -> None:
        """After a rolled-back apply: keep the raw notification with its verdict (best effort)."""
        with suppress(*self._transient), self._uow() as uow:
            text = body.decode("utf-8")
            uow.notifications.insert(note.id, note.event_type, headers, text, now, note.account)
            uow.notifications.finish(note.id, status, outcome, now)

    def _finish(self, notification_id: str, now: datetime, status: NotificationStatus, outcome: str) -> None:
        # If even this fails the row stays as it was, which the re-processing job retries the same.
        with suppress(*self._transient), self._uow() as uow:
            uow.notifications.finish(notification_id, status, outcome, now)


def _rejected(exc: NotificationRejected, notification_id: str = "") -> Receipt:
    disposition = Disposition.REJECT_AUTH if exc.auth else Disposition.REJECT_MALFORMED
    return Receipt(disposition, exc.outcome, exc.message, notification_id)


def _with(receipt: Receipt, disposition: Disposition, outcome: str, message: str = "") -> Receipt:
    return Receipt(
        disposition,
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
