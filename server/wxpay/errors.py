"""Verification failures of signed messages from WeChat Pay (notifications and API responses).

Each subclass fixes an `outcome`, the label the notify sidecar answers with and counts in metrics, and
whether it failed authentication (`AUTH`: a forged or foreign message) rather than shape.
"""

from __future__ import annotations

from typing import Final

from server.domain.notification import MalformedError, NotificationRejected

__all__ = [
    "OPERATOR_ACTIONS",
    "BadSignatureError",
    "CredentialsError",
    "MalformedError",
    "MissingHeadersError",
    "NotificationRejected",
    "StaleTimestampError",
    "UndecryptableError",
    "UnknownAccountError",
    "UnknownSerialError",
]


class MissingHeadersError(NotificationRejected):
    OUTCOME = "missing_headers"


class StaleTimestampError(NotificationRejected):
    OUTCOME = "stale"
    AUTH = True


class UnknownSerialError(NotificationRejected):
    OUTCOME = "unknown_serial"
    AUTH = True


class BadSignatureError(NotificationRejected):
    OUTCOME = "bad_signature"
    AUTH = True


class UnknownAccountError(NotificationRejected):
    """Sent to the notify URL of an account this deployment does not have (issue 18)."""

    OUTCOME = "unknown_account"
    AUTH = True


class UndecryptableError(NotificationRejected):
    OUTCOME = "undecryptable"


# What an operator does about a rejection that is WeChat's or our configuration's fault, not an
# attacker's: such outcomes are logged as errors with this hint (issue 11).
OPERATOR_ACTIONS: Final[dict[str, str]] = {
    UndecryptableError.OUTCOME: (
        "signed by WeChat Pay but does not decrypt: compare apiv3_key in merchant.json with the APIv3 key "
        "set in the merchant platform (API安全); until they match every notification is refused"
    ),
}


class CredentialsError(Exception):
    """The credentials bundle is missing a file or holds something unusable. Never carries secrets."""
