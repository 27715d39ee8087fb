"""Verification failures of signed messages from WeChat Pay (notifications and API responses).

Each subclass fixes an `outcome`, the label the notify sidecar answers with and counts in metrics.
"""

from __future__ import annotations

from server.domain.notification import (
    BadSignatureError,
    MalformedError,
    MissingHeadersError,
    NotificationRejected,
    StaleTimestampError,
    UndecryptableError,
    UnknownSerialError,
)

__all__ = [
    "BadSignatureError",
    "CredentialsError",
    "MalformedError",
    "MissingHeadersError",
    "NotificationRejected",
    "StaleTimestampError",
    "UndecryptableError",
    "UnknownSerialError",
]


class CredentialsError(Exception):
    """The credentials bundle is missing a file or holds something unusable. Never carries secrets."""
