"""The operator's reads on a hot standby (ORDERPAY_DATABASE_READ_URL), falling back to the primary.

Only reads that decide nothing go through a `ReadRoute`: the admin API's and the console's lists and
pages, the overview's figures. Use cases, the unit of work, idempotency lookups, fulfilment and jobs
never do, and neither does GetOrder (it answers the BFF right after the BFF's own write, which a
standby may not have replayed yet). docs/high-availability.md § Read routing.

Every model is bound to one proxy (`tables.database_proxy`). peewee's `bind_ctx` would rebind the
model classes for every thread at once, so a write on another thread could land on the standby; the
proxy here instead consults a context variable, which `ReadRoute.run` sets for its own thread (or
asyncio task) only, for the length of one read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import peewee as pw
import psycopg2
import structlog

from server.adapters.postgres import server_gone

log = structlog.get_logger("orderpay.db")
T = TypeVar("T")

# The database the models use in this context, when a ReadRoute chose one; None: the proxy's own.
_ROUTED: ContextVar[pw.Database | None] = ContextVar("orderpay_routed_database", default=None)

READ_APPLICATION_NAME = "orderpay-reads"  # the read pool's sessions, as pg_stat_activity shows them
RETRY_STANDBY_AFTER_S = 10.0  # after a failure, reads stay on the primary this long before trying again
RECOVERY_CONFLICT = "40001"  # a standby cancels a read that holds back WAL replay: retry elsewhere
READ_ONLY_VIOLATION = "25006"  # a write on the standby: a bug, never a reason to retry on the primary


class RoutingProxy(pw.DatabaseProxy):
    """The models' database: the bound one, unless this context is inside `ReadRoute.run`."""

    def __getattr__(self, attr: str) -> Any:
        target = _ROUTED.get()  # on every query: one lookup more than peewee's own proxy
        if target is None:
            target = self.obj
        if target is None:
            raise AttributeError("Cannot use uninitialized Proxy.")
        return getattr(target, attr)

    def __enter__(self) -> Any:
        return self.__getattr__("__enter__")()

    def __exit__(self, *exc: object) -> Any:
        return self.__getattr__("__exit__")(*exc)


@dataclass(frozen=True)
class ReplicaLag:
    """What the standby says about itself (asked on the standby, so it needs no access to the primary)."""

    in_recovery: bool  # False: the read URL reaches a primary (a misconfiguration, or after a failover)
    caught_up: bool  # it has replayed all the WAL it received
    replay_age_s: float | None  # since the last transaction it replayed committed on the primary

    @property
    def lag_s(self) -> float | None:
        """Seconds the standby's data is behind; 0 when it replayed everything it received (an idle
        primary sends nothing, so the replay timestamp ages without any lag)."""
        if not self.in_recovery or self.caught_up:
            return 0.0
        return self.replay_age_s


LAG_SQL = (
    "SELECT pg_is_in_recovery(),"
    " pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn(),"
    " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
)


class ReadRoute:
    """Where the operator's reads go: the standby while it answers, else the primary.

    A read the standby cannot serve (refused connection, a server gone mid-read, a recovery conflict)
    runs again on the primary, and reads stay there for RETRY_STANDBY_AFTER_S; the change is logged
    once each way and counted through `observe("standby" | "primary_fallback")`.
    """

    def __init__(
        self,
        primary: pw.Database,
        standby: pw.Database | None = None,
        *,
        observe: Callable[[str], None] | None = None,
        retry_after_s: float = RETRY_STANDBY_AFTER_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._standby = standby
        self._observe = observe or (lambda _route: None)
        self._retry_after_s = retry_after_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._down_since: float | None = None  # when the standby last failed; None while it serves

    @property
    def has_standby(self) -> bool:
        return self._standby is not None

    def run(self, read: Callable[[], T]) -> T:
        """`read()` with the models pointed at the chosen database and a connection open on it."""
        if _ROUTED.get() is not None:  # nested: the outer read chose already
            return read()
        standby = self._standby_now()
        if standby is not None:
            try:
                result = _on(standby, read)
            except (pw.DatabaseError, psycopg2.Error) as error:
                if not _standby_fault(error):
                    raise
                self._failed(error)
            else:
                self._served()
                return result
        return _on(self._primary, read)

    def lag(self) -> ReplicaLag | None:
        """The standby's replication state, or None without a standby or when it does not answer."""
        if self._standby is None:
            return None
        standby = self._standby
        try:
            row = _on(standby, lambda: standby.execute_sql(LAG_SQL).fetchone())
        except (pw.DatabaseError, psycopg2.Error):
            return None
        return ReplicaLag(bool(row[0]), bool(row[1]), None if row[2] is None else float(row[2]))

    def close(self) -> None:
        close_all = getattr(self._standby, "close_all", None)
        if close_all is not None:
            close_all()

    def _standby_now(self) -> pw.Database | None:
        with self._lock:
            if self._standby is None:
                return None
            if self._down_since is not None and self._monotonic() - self._down_since < self._retry_after_s:
                self._observe("primary_fallback")
                return None
            return self._standby

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            first = self._down_since is None
            self._down_since = self._monotonic()
        self._observe("primary_fallback")
        if first:
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            log.warning("db.read_standby_unavailable", error=reason, retry_after_s=self._retry_after_s)

    def _served(self) -> None:
        with self._lock:
            back = self._down_since is not None
            self._down_since = None
        self._observe("standby")
        if back:
            log.warning("db.read_standby_back")


def _on(db: pw.Database, read: Callable[[], T]) -> T:
    token = _ROUTED.set(db)
    try:
        with db.connection_context():
            return read()
    finally:
        _ROUTED.reset(token)


def _standby_fault(error: BaseException) -> bool:
    """The standby could not serve this read, and the primary can: gone, starting, or a replay
    conflict. Never a bad query (it would fail on the primary too) or a write (a bug)."""
    original = getattr(error, "orig", None) or error
    code = getattr(original, "pgcode", None)
    if code == RECOVERY_CONFLICT:
        return True
    return code != READ_ONLY_VIOLATION and server_gone(error)
