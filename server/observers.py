"""What the composition root hands the adapters and use cases to report into metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def provider_observer(account: str) -> Callable[[str, str, float], None]:
    """The observer of one signing account's client (`account`: a configured name). A sub-merchant's
    calls are signed by its provider and counted under the provider."""

    def observe(operation: str, outcome: str, seconds: float) -> None:
        PROVIDER_CALLS.labels(account, operation, outcome).inc()
        PROVIDER_LATENCY.labels(operation).observe(seconds)
        PROVIDER_CIRCUIT.set(1 if outcome == "circuit_open" else 0)

    return observe


def observe_recon(
    open_counts: Mapping[str, Mapping[ExceptionKind, int]], last_days: Mapping[str, date]
) -> None:
    """Per configured account (the service passes only those): every kind, zeros included."""
    for account, counts in open_counts.items():
        for kind in ExceptionKind:
            RECON_EXCEPTIONS.labels(account, kind.value).set(counts.get(kind, 0))
    for account, day in last_days.items():
        RECON_LAST_DAY.labels(account).set(datetime.combine(day, time(0), tzinfo=BEIJING).timestamp())


def observe_read_route(route: str) -> None:
    DB_READS.labels(route).inc()
    DB_READ_STANDBY_UP.set(1 if route == "standby" else 0)
