"""Figures for the console's overview: orders and payments per hour, notification outcomes,
fulfilment latency. Bucketed in Python over one window's rows, so SQLite and PostgreSQL agree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from server.adapters.read_routing import ReadRoute
from server.adapters.tables import FulfilmentRow, NotificationRow, OrderRow
from server.adapters.times import from_db_time, to_db_time

WINDOW_ROWS = 50_000  # an upper bound on what one overview reads
LATENCY_BUCKETS_S = (1.0, 5.0, 30.0, 60.0, 300.0, 3600.0)


@dataclass(frozen=True)
class Overview:
    hours: list[datetime]  # start of each hour, oldest first
    orders_per_hour: list[int]
    payments_per_hour: list[int]
    notification_outcomes: list[tuple[str, int]]  # most frequent first
    latency_buckets: list[tuple[str, int]]  # "≤ 1 s" ... "> 1 h"
    latency_p50_s: float | None
    latency_p95_s: float | None


def overview(reads: ReadRoute | pw.Database, now: datetime, hours: int = 24) -> Overview:
    """The last `hours` hours' figures, read where the route says (the standby when configured)."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    route = reads if isinstance(reads, ReadRoute) else ReadRoute(reads)
    created, paid, outcomes, latencies = route.run(lambda: _window(to_db_time(start)))
    hour_starts = [start + timedelta(hours=i) for i in range(hours)]
    return Overview(
        hours=hour_starts,
        orders_per_hour=_per_hour(created, start, hours),
        payments_per_hour=_per_hour(paid, start, hours),
        notification_outcomes=outcomes.most_common(),
        latency_buckets=_latency_buckets(latencies),
        latency_p50_s=_quantile(latencies, 0.5),
        latency_p95_s=_quantile(latencies, 0.95),
    )


def _window(since: Any) -> tuple[list[Any], list[Any], Counter[str], list[float]]:
    created = [
        r.created_at
        for r in OrderRow.select(OrderRow.created_at).where(OrderRow.created_at >= since).limit(WINDOW_ROWS)
    ]
    paid = [
        r.paid_at
        for r in OrderRow.select(OrderRow.paid_at).where(OrderRow.paid_at >= since).limit(WINDOW_ROWS)
    ]
    outcomes = Counter(
        r.outcome or r.status.lower()
        for r in NotificationRow.select(NotificationRow.outcome, NotificationRow.status)
        .where(NotificationRow.received_at >= since)
        .limit(WINDOW_ROWS)
    )
    pairs = (
        FulfilmentRow.select(FulfilmentRow.updated_at, OrderRow.paid_at)
        .join(OrderRow, on=FulfilmentRow.order_id == OrderRow.order_id)
        .where((FulfilmentRow.status == "SUCCEEDED") & (OrderRow.paid_at >= since))
        .limit(WINDOW_ROWS)
        .tuples()
    )
    rows: list[tuple[Any, Any]] = list(pairs)  # type: ignore[arg-type]  # peewee's tuples() is untyped
    return created, paid, outcomes, [_seconds_between(paid_at, done_at) for done_at, paid_at in rows]


def _seconds_between(start: datetime | str | None, end: datetime | str | None) -> float:
    began, ended = from_db_time(start), from_db_time(end)
    return 0.0 if began is None or ended is None else max(0.0, (ended - began).total_seconds())


def _per_hour(values: Sequence[datetime | str | None], start: datetime, hours: int) -> list[int]:
    counts = [0] * hours
    for value in values:
        at = from_db_time(value)
        if at is None:
            continue
        index = int((at - start).total_seconds() // 3600)
        if 0 <= index < hours:
            counts[index] += 1
    return counts


def _latency_buckets(latencies: list[float]) -> list[tuple[str, int]]:
    labels = [f"≤ {_seconds(b)}" for b in LATENCY_BUCKETS_S] + [f"> {_seconds(LATENCY_BUCKETS_S[-1])}"]
    counts = [0] * len(labels)
    for value in latencies:
        index = next(
            (i for i, bound in enumerate(LATENCY_BUCKETS_S) if value <= bound), len(LATENCY_BUCKETS_S)
        )
        counts[index] += 1
    return list(zip(labels, counts, strict=True))


def _seconds(value: float) -> str:
    return (
        f"{value / 3600:g} h" if value >= 3600 else f"{value / 60:g} min" if value >= 60 else f"{value:g} s"
    )


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
