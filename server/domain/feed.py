"""The order event feed: its event types, and the rules on subscriber names and filters.

An entry (server.service.ports.FeedEntry) is appended in the transaction that made it true
(server.service.feed); the log gives it a gap-free position in commit order (server.adapters.event_log).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from server.domain.errors import FieldViolation, InvalidArgumentError, UnknownEventTypeError

# Until orders carry their merchant account (issue 18), every order belongs to this one.
DEFAULT_ACCOUNT = "default"
_SUBSCRIBER = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_ACCOUNT = 64


class FeedType(StrEnum):
    ORDER_CREATED = "ORDER_CREATED"
    ORDER_PAID = "ORDER_PAID"
    ORDER_HELD = "ORDER_HELD"
    ORDER_CLOSED = "ORDER_CLOSED"
    FULFILMENT_REQUESTED = "FULFILMENT_REQUESTED"
    FULFILMENT_SUCCEEDED = "FULFILMENT_SUCCEEDED"
    FULFILMENT_FAILED = "FULFILMENT_FAILED"
    REFUND_REQUESTED = "REFUND_REQUESTED"
    REFUND_SUCCEEDED = "REFUND_SUCCEEDED"
    REFUND_ABNORMAL = "REFUND_ABNORMAL"
    REFUND_CLOSED = "REFUND_CLOSED"
    RECON_EXCEPTION_OPENED = "RECON_EXCEPTION_OPENED"
    RECON_EXCEPTION_RESOLVED = "RECON_EXCEPTION_RESOLVED"
    GRANT_REVOKED = "GRANT_REVOKED"


@dataclass(frozen=True)
class FeedFilter:
    types: frozenset[FeedType] = frozenset()  # empty: every type
    account: str = ""  # empty: every account

    def admits(self, entry_type: str, account: str) -> bool:
        return (not self.types or entry_type in self.types) and (not self.account or account == self.account)


def check_subscriber(name: str) -> str:
    if not _SUBSCRIBER.fullmatch(name):
        raise InvalidArgumentError(
            [FieldViolation("subscriber", "1-64 characters: letters, digits, '.', '_', '-'")]
        )
    return name


def feed_filter(types: Iterable[str], account: str) -> FeedFilter:
    """Validate a Watch filter: unknown type names are refused, not ignored."""
    chosen = set()
    for name in types:
        try:
            chosen.add(FeedType(name))
        except ValueError:
            raise UnknownEventTypeError([FieldViolation("types", f"unknown event type {name!r}")]) from None
    if len(account) > MAX_ACCOUNT:
        raise InvalidArgumentError([FieldViolation("account", f"at most {MAX_ACCOUNT} characters")])
    return FeedFilter(frozenset(chosen), account)
