"""A signed notification from the payment provider, and its rejection in general terms.

Protocol-neutral on purpose: the service layer codes against these; the WeChat Pay adapter
(server.wxpay) produces them, and its rejections (server.wxpay.errors) subclass NotificationRejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from server.domain.provider import RefundReport, TransactionReport


@dataclass(frozen=True)
class Notification:
    id: str
    event_type: str
    create_time: str
    resource_type: str
    summary: str
    report: TransactionReport | RefundReport | None  # None: an event type we do not handle
    account: str | None = None  # the account whose notify URL it came to, verified with its keys


class NotificationStatus(StrEnum):
    """A stored notification's row (server.adapters.notification_store)."""

    RECEIVED = "RECEIVED"  # stored, not yet applied: the re-processing job finishes it
    PROCESSED = "PROCESSED"  # terminal, with its outcome: applied, or decided not to be
    FAILED = "FAILED"  # the last attempt failed: kept for the re-processing job (or a person)


class NotificationRejected(Exception):  # noqa: N818 - the name other layers code against
    """A signed message from the provider failed a check. `outcome` says which (the provider adapter's
    subclasses fix it, server.wxpay.errors); `auth` says it failed authentication (who sent it), not shape."""

    OUTCOME: ClassVar[str] = "rejected"
    AUTH: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.outcome = self.OUTCOME
        self.message = message

    @property
    def auth(self) -> bool:
        return self.AUTH


class MalformedError(NotificationRejected):
    """Not a message we can read (also raised by the use case: an over-long id, a body that is not UTF-8)."""

    OUTCOME = "malformed"
