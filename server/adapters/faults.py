"""Database faults that may pass on their own, the one list both entrypoints classify by.

The notify sidecar answers them 5xx (WeChat retries); gRPC maps them to a retryable status.
"""

from __future__ import annotations

import peewee as pw
from playhouse.pool import MaxConnectionsExceeded

# Server down or restarting, database busy or locked, connection dropped, pool exhausted.
TRANSIENT_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    pw.OperationalError,
    pw.InterfaceError,
    MaxConnectionsExceeded,
)
