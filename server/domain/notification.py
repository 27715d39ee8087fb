"""A signed notification from the payment provider, and the ways one is rejected.

Protocol-neutral on purpose: the service layer codes against these; the WeChat Pay adapter
(server.wxpay) produces them. Each rejection fixes an `outcome`, the label the sidecar answers
with and counts in metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
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


class NotificationRejected(Exception):  # noqa: N818 - the name other layers code against
    """A signed message from WeChat Pay failed a check; `outcome` says which one."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message


class _FixedOutcome(NotificationRejected):
    OUTCOME: ClassVar[str]

    def __init__(self, message: str) -> None:
        super().__init__(self.OUTCOME, message)


class MissingHeadersError(_FixedOutcome):
    OUTCOME = "missing_headers"


class StaleTimestampError(_FixedOutcome):
    OUTCOME = "stale"


class UnknownSerialError(_FixedOutcome):
    OUTCOME = "unknown_serial"


class BadSignatureError(_FixedOutcome):
    OUTCOME = "bad_signature"


class MalformedError(_FixedOutcome):
    OUTCOME = "malformed"


class UndecryptableError(_FixedOutcome):
    OUTCOME = "undecryptable"


# What an operator does about a rejection that is WeChat's or our configuration's fault, not an
# attacker's: such outcomes are logged as errors with this hint (issue 11).
OPERATOR_ACTIONS: dict[str, str] = {
    UndecryptableError.OUTCOME: (
        "signed by WeChat Pay but does not decrypt: compare apiv3_key in merchant.json with the APIv3 key "
        "set in the merchant platform (API安全); until they match every notification is refused"
    ),
}
