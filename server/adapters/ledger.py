"""Peewee side of fulfilment: the ledger (claims, settlement), grants, memberships.

Repositories on the unit of work: nothing here opens a transaction, so a grant, its ledger row and
the order's move commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from server.adapters.compiled import CompiledCompareAndSet, CompiledInsert, CompiledLookup, CompiledQuery
from server.adapters.tables import FulfilmentRow, GrantRow, MembershipRow
from server.adapters.times import from_db_time, required_time, to_db_time
from server.domain.fulfilment import FulfilmentClaim, GrantState, LedgerStatus
from server.domain.membership import Membership, extended
from server.domain.order import Order
from server.service.retry import retry_on_conflict
from server.service.shapes import Grant

_F = FulfilmentRow
_PENDING = LedgerStatus.PENDING.value
Mark = Callable[[str], pw.Value]


def _add(mark: Mark, _variant: tuple[str, ...]) -> pw.Query:
    columns = ("order_id", "kind", "status", "next_attempt_at", "created_at", "updated_at")
    return _F.insert({getattr(_F, c): mark(c) for c in columns}).on_conflict_ignore()


def _due_for_order(mark: Mark, variant: tuple[str, ...]) -> pw.Query:
    """The order's row when PENDING and due; variant ("skip_locked",) on PostgreSQL."""
    query = _F.select(_F.order_id, _F.kind, _F.version, _F.attempts).where(
        (_F.order_id == mark("order_id")) & (_F.status == _PENDING) & (_F.next_attempt_at <= mark("now"))
    )
    return query.for_update(skip_locked=True) if variant else query


# The prompt fulfilment's statements, composed once (server/adapters/compiled.py). A compare-and-set on
# the version needs no status guard: every change to a row bumps its version, so the version a claim
# read PENDING is still PENDING when it matches.
_ADD = CompiledQuery(_F, _add)
_DUE_FOR_ORDER = CompiledQuery(_F, _due_for_order)
_LEDGER_CAS = CompiledCompareAndSet(_F, _F.order_id)
_GRANT_INSERT = CompiledInsert(GrantRow)
_MEMBERSHIP_BY_USER = CompiledLookup(MembershipRow, MembershipRow.user_id)
_MEMBERSHIP_CAS = CompiledCompareAndSet(MembershipRow, MembershipRow.user_id)
_MEMBERSHIP_INSERT = CompiledQuery(
    MembershipRow,
    lambda mark, _: MembershipRow.insert(
        {getattr(MembershipRow, c): mark(c) for c in ("user_id", "expires_at", "updated_at")}
    ).on_conflict_ignore(),
)


class PeeweeLedger:
    def __init__(self, skip_locked: bool) -> None:
        # PostgreSQL lets concurrent claimers skip each other's rows; SQLite serialises writers anyway.
        self._skip_locked = skip_locked

    def add(self, order_id: str, kind: str, now: datetime) -> None:
        """The outbox row of OrderPaid, written in the PAID transaction; unique per order."""
        at = to_db_time(now)
        _ADD.execute(
            {
                "order_id": order_id,
                "kind": kind,
                "status": _PENDING,
                "next_attempt_at": at,
                "created_at": at,
                "updated_at": at,
            }
        )

    def _due(self, now: datetime) -> pw.Expression:
        return (FulfilmentRow.status == LedgerStatus.PENDING) & (
            FulfilmentRow.next_attempt_at <= to_db_time(now)
        )

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[FulfilmentClaim]:
        """Take up to `limit` due PENDING rows; pushing next_attempt_at forward is the lease."""
        query = FulfilmentRow.select().where(self._due(now)).order_by(FulfilmentRow.next_attempt_at)
        return self._claim_rows(query.limit(limit), now, lease)

    def claim_order(self, order_id: str, now: datetime, lease: timedelta) -> FulfilmentClaim | None:
        claims = self._claim_rows(self._due_rows(order_id, now), now, lease)
        return claims[0] if claims else None

    def due_for_order(self, order_id: str, now: datetime) -> FulfilmentClaim | None:
        """The order's due PENDING row as a claim at its current version, without a lease: for a caller
        that settles it in this same transaction (on PostgreSQL the row stays locked until then)."""
        rows = self._due_rows(order_id, now)
        return FulfilmentClaim(*rows[0]) if rows else None

    def _due_rows(self, order_id: str, now: datetime) -> list[Any]:
        variant = ("skip_locked",) if self._skip_locked else ()
        return list(_DUE_FOR_ORDER.execute({"order_id": order_id, "now": to_db_time(now)}, variant))

    def _claim_rows(
        self, query: pw.ModelSelect[FulfilmentRow] | list[Any], now: datetime, lease: timedelta
    ) -> list[FulfilmentClaim]:
        """`query`: due rows, as models or as (order_id, kind, version, attempts) tuples."""
        if isinstance(query, pw.ModelSelect):
            if self._skip_locked:
                query = query.for_update(skip_locked=True)
            rows: Iterable[Any] = [(r.order_id, r.kind, r.version, r.attempts) for r in query]
        else:
            rows = query
        claims = []
        lease_changes = {"next_attempt_at": to_db_time(now + lease), "updated_at": to_db_time(now)}
        for order_id, kind, version, attempts in rows:
            if _LEDGER_CAS.execute(order_id, version, lease_changes):
                claims.append(FulfilmentClaim(order_id, kind, version + 1, attempts))
        return claims

    def settle(
        self,
        claim: FulfilmentClaim,
        now: datetime,
        *,
        status: LedgerStatus,
        attempts: int | None = None,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        """Compare-and-set on the claimed version: False when the lease was lost to another worker."""
        changes: dict[str, object] = {"status": status.value, "updated_at": to_db_time(now)}
        if attempts is not None:
            changes["attempts"] = attempts
        if next_attempt_at is not None:
            changes["next_attempt_at"] = to_db_time(next_attempt_at)
        if error is not None:
            changes["last_error"] = error
        return bool(_LEDGER_CAS.execute(claim.order_id, claim.version, changes))

    def decide(self, order_id: str, now: datetime, status: LedgerStatus, error: str) -> bool:
        """The business answered an EXTERNAL request: settle the row if still PENDING, lease or not
        (a worker holding it then loses its compare-and-set on the version)."""
        updated = (
            FulfilmentRow.update(
                status=status.value,
                last_error=error,
                version=FulfilmentRow.version + 1,
                updated_at=to_db_time(now),
            )
            .where((FulfilmentRow.order_id == order_id) & (FulfilmentRow.status == LedgerStatus.PENDING))
            .execute()
        )
        return bool(updated)

    def oldest_due(self, now: datetime) -> datetime | None:
        oldest = FulfilmentRow.select(pw.fn.MIN(FulfilmentRow.next_attempt_at)).where(self._due(now)).scalar()
        return from_db_time(oldest)

    # --- as an operator moves it (server.service.operations) -------------------------------------
    def status(self, order_id: str) -> LedgerStatus | None:
        row = FulfilmentRow.get_or_none(FulfilmentRow.order_id == order_id)
        return None if row is None else LedgerStatus(row.status)

    def restart(self, order_id: str, kind: str, now: datetime) -> None:
        """A fresh PENDING row, due now with no attempts counted: insert, or reset a FAILED one."""
        at = to_db_time(now)
        # The caller's compare-and-set on the order's version serialises this: no insert race here.
        if FulfilmentRow.get_or_none(FulfilmentRow.order_id == order_id) is None:
            self.add(order_id, kind, now)
            return
        FulfilmentRow.update(
            status=LedgerStatus.PENDING.value,
            attempts=0,
            next_attempt_at=at,
            last_error="",
            updated_at=at,
            version=FulfilmentRow.version + 1,
        ).where(
            (FulfilmentRow.order_id == order_id) & (FulfilmentRow.status != LedgerStatus.SUCCEEDED.value)
        ).execute()

    def due_now(self, order_id: str, now: datetime) -> bool:
        at = to_db_time(now)
        return bool(
            FulfilmentRow.update(next_attempt_at=at, updated_at=at, version=FulfilmentRow.version + 1)
            .where(
                (FulfilmentRow.order_id == order_id) & (FulfilmentRow.status == LedgerStatus.PENDING.value)
            )
            .execute()
        )

    def stop(self, order_id: str, now: datetime, error: str) -> bool:
        at = to_db_time(now)
        return bool(
            FulfilmentRow.update(
                status=LedgerStatus.FAILED.value,
                last_error=error[:1000],
                updated_at=at,
                version=FulfilmentRow.version + 1,
            )
            .where(
                (FulfilmentRow.order_id == order_id) & (FulfilmentRow.status == LedgerStatus.PENDING.value)
            )
            .execute()
        )


class PeeweeGrants:
    def record(
        self, order: Order, state: GrantState, now: datetime, *, article_id: str | None, days: int
    ) -> None:
        _GRANT_INSERT.execute(
            {
                "order_id": order.order_id,
                "user_id": order.user_id,
                "kind": order.kind.value,
                "article_id": article_id,
                "days": days,
                "state": state.value,
                "created_at": to_db_time(now),
            }
        )

    def revoke(self, order_id: str, now: datetime) -> Grant | None:
        live = (GrantRow.order_id == order_id) & (GrantRow.state != GrantState.REVOKED)
        row = GrantRow.get_or_none(live)
        if row is None:
            return None
        GrantRow.update(state=GrantState.REVOKED.value, revoked_at=to_db_time(now)).where(live).execute()
        return Grant(row.order_id, row.user_id, GrantState(row.state), row.days)


class PeeweeMemberships:
    def get(self, user_id: str) -> Membership | None:
        row = MembershipRow.get_or_none(MembershipRow.user_id == user_id)
        if row is None:
            return None
        return Membership(user_id=row.user_id, expires_at=from_db_time(row.expires_at), version=row.version)

    def extend(self, user_id: str, days: int, now: datetime) -> datetime:
        """expires_at = max(now, current) + days, by compare-and-set on the membership's version."""
        return retry_on_conflict(lambda: self._try_extend(user_id, days, now), f"membership of {user_id!r}")

    def _try_extend(self, user_id: str, days: int, now: datetime) -> datetime | None:
        row = _MEMBERSHIP_BY_USER.one(user_id)
        if row is None:
            expires_at = extended(None, now, days)
            return expires_at if self._insert(user_id, expires_at, now) else None
        expires_at = extended(from_db_time(row["expires_at"]), now, days)
        return expires_at if self._move(user_id, row["version"], expires_at, now) else None

    def shorten(self, user_id: str, days: int, now: datetime) -> None:
        """Take `days` off, never below now."""
        retry_on_conflict(lambda: self._try_shorten(user_id, days, now), f"membership of {user_id!r}")

    def _try_shorten(self, user_id: str, days: int, now: datetime) -> bool | None:
        row = _MEMBERSHIP_BY_USER.one(user_id)
        if row is None:
            return True
        current = required_time(row["expires_at"])
        shortened = max(now, current - timedelta(days=days))
        return True if shortened >= current or self._move(user_id, row["version"], shortened, now) else None

    @staticmethod
    def _insert(user_id: str, expires_at: datetime, now: datetime) -> bool:
        """False when a concurrent first membership won: ON CONFLICT DO NOTHING inserts nothing and,
        unlike a caught IntegrityError, needs no savepoint to keep the transaction usable."""
        values = {"user_id": user_id, "expires_at": to_db_time(expires_at), "updated_at": to_db_time(now)}
        return bool(_MEMBERSHIP_INSERT.execute(values).rowcount)

    @staticmethod
    def _move(user_id: str, version: int, expires_at: datetime, now: datetime) -> bool:
        changes = {"expires_at": to_db_time(expires_at), "updated_at": to_db_time(now)}
        return bool(_MEMBERSHIP_CAS.execute(user_id, version, changes))
