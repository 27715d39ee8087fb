"""Verification failures of signed messages from WeChat Pay (notifications and API responses).

Each subclass fixes an `outcome`, the label the notify sidecar answers with and counts in metrics.
"""

from __future__ import annotations

from typing import ClassVar


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


class CredentialsError(Exception):
    """The credentials bundle is missing a file or holds something unusable. Never carries secrets."""
