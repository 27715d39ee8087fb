"""What the order event feed needs from the outside (issue 19), as Protocols and shapes: the log and
its subscribers, repositories on the unit of work (server.adapters.event_log implements them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from server.domain.feed import DEFAULT_ACCOUNT, FeedFilter, FeedType
from server.domain.order import Order
from server.domain.refund import Refund
from server.service.recon_ports import ReconException


@dataclass(frozen=True)
class FeedEntry:
    """One event as it goes into the feed: the order (and refund, or reconciliation exception) as the
    transaction leaves them. A reconciliation exception may have no order of ours."""

    type: FeedType
    order: Order | None
    occurred_at: datetime
    account: str = DEFAULT_ACCOUNT
    refund: Refund | None = None
    recon: ReconException | None = None
    attempt: int = 0

    @property
    def order_id(self) -> str:
        return self.order.order_id if self.order is not None else ""


@dataclass(frozen=True)
class StoredEvent:
    position: int
    type: str
    account: str
    payload: bytes  # the serialized public message (orderpay.v1.FeedEvent)


@dataclass(frozen=True)
class Subscriber:
    name: str
    acked_position: int
    registered_at: datetime | None
    acked_at: datetime | None
    last_seen_at: datetime | None


class EventLog(Protocol):
    """The order event feed's log: gap-free positions in commit order (server.adapters.event_log)."""

    def append(self, entries: Sequence[FeedEntry]) -> int:
        """Append in order, in the caller's transaction; returns the last position given."""
        ...

    def head(self) -> int: ...
    def read_after(self, after: int, upto: int, chosen: FeedFilter, limit: int) -> list[StoredEvent]: ...
    def purge(self, cutoff: datetime, keep_after: int, limit: int) -> int: ...
    def count_purgeable(self, cutoff: datetime, keep_after: int) -> int: ...


class Subscribers(Protocol):
    def register(self, name: str, now: datetime) -> Subscriber: ...
    def get(self, name: str) -> Subscriber | None: ...
    def ack(self, name: str, position: int, now: datetime) -> Subscriber | None: ...
    def seen(self, name: str, now: datetime) -> None: ...
    def all(self) -> list[Subscriber]: ...
    def lowest_ack(self) -> int | None: ...
