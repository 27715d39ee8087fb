"""What the composition root hands the adapters and use cases to report into metrics."""

from __future__ import annotations

from datetime import date, datetime, time

from server.domain.reconciliation import BEIJING, ExceptionKind
from server.metrics import (
    DB_READ_STANDBY_UP,
    DB_READS,
    PROVIDER_CALLS,
    PROVIDER_CIRCUIT,
    PROVIDER_LATENCY,
    RECON_EXCEPTIONS,
    RECON_LAST_DAY,
)


def observe_provider(operation: str, outcome: str, seconds: float) -> None:
    PROVIDER_CALLS.labels(operation, outcome).inc()
    PROVIDER_LATENCY.labels(operation).observe(seconds)
    PROVIDER_CIRCUIT.set(1 if outcome == "circuit_open" else 0)


def observe_recon(open_counts: dict[ExceptionKind, int], last_day: date | None) -> None:
    for kind in ExceptionKind:
        RECON_EXCEPTIONS.labels(kind.value).set(open_counts.get(kind, 0))
    if last_day is not None:
        RECON_LAST_DAY.set(datetime.combine(last_day, time(0), tzinfo=BEIJING).timestamp())


def observe_read_route(route: str) -> None:
    DB_READS.labels(route).inc()
    DB_READ_STANDBY_UP.set(1 if route == "standby" else 0)
