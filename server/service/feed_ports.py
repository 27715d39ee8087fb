"""The shapes the order event feed's ports speak in (issue 19); the Protocols are in ports.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.domain.feed import DEFAULT_ACCOUNT, FeedType
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
