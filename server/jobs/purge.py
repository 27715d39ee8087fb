"""`orderpay purge`: delete never-paid CLOSED orders older than a cutoff, with their audit rows."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from server.service.ports import UnitOfWorkFactory
from server.service.shapes import PurgeReport

_DURATION_PART = re.compile(r"(\d+)([dhms])")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """'3d', '12h', '30m', '45s' or a combination such as '1d12h'."""
    cleaned = text.strip().lower()
    parts = _DURATION_PART.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise ValueError(f"bad duration {text!r}: want e.g. 3d, 12h, 30m or 1d12h")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


def purge_closed_unpaid(uow: UnitOfWorkFactory, cutoff: datetime, *, dry_run: bool = False) -> PurgeReport:
    """Batch by batch, each batch its own transaction, so a large purge never holds long locks."""
    orders = events = 0
    after_seq = 0
    while True:
        with uow() as work:
            queries = work.claims
            batch = queries.purgeable_orders(cutoff, after_seq)
            if not batch:
                break
            after_seq = batch[-1][0]
            order_ids = [order_id for _, order_id in batch]
            if dry_run:
                deleted = PurgeReport(len(order_ids), queries.count_events(order_ids))
            else:
                deleted = queries.delete_orders(order_ids)
        orders += deleted.orders
        events += deleted.events
    return PurgeReport(orders=orders, events=events)
