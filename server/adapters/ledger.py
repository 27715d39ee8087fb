"""Peewee side of fulfilment: the ledger (claims, settlement), grants, memberships.

Repositories on the unit of work: nothing here opens a transaction, so a grant, its ledger row and
the order's move commit or roll back together.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import peewee as pw

from server.adapters.tables import FulfilmentRow, GrantRow, MembershipRow
from server.adapters.times import from_db_time, required_time, to_db_time
from server.domain.fulfilment import FulfilmentClaim, GrantState, LedgerStatus
from server.domain.membership import Membership, extended
from server.domain.order import Order
from server.service.retry import retry_on_conflict
from server.service.shapes import Grant


class PeeweeLedger:
    def __init__(self, skip_locked: bool) -> None:
        # PostgreSQL lets concurrent claimers skip each other's rows; SQLite serialises writers anyway.
        self._skip_locked = skip_locked

    def add(self, order_id: str, kind: str, now: datetime) -> None:
        """The outbox row of OrderPaid, written in the PAID transaction; unique per order."""
        FulfilmentRow.insert(
            order_id=order_id,
            kind=kind,
            status=LedgerStatus.PENDING.value,
            next_attempt_at=to_db_time(now),
            created_at=to_db_time(now),
            updated_at=to_db_time(now),
        ).on_conflict_ignore().execute()

    def _due(self, now: datetime) -> pw.Expression:
        return (FulfilmentRow.status == LedgerStatus.PENDING) & (
            FulfilmentRow.next_attempt_at <= to_db_time(now)
        )

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[FulfilmentClaim]:
        """Take up to `limit` due PENDING rows; pushing next_attempt_at forward is the lease."""
        query = FulfilmentRow.select().where(self._due(now)).order_by(FulfilmentRow.next_attempt_at)
        return self._claim_rows(query.limit(limit), now, lease)

    def claim_order(self, order_id: str, now: datetime, lease: timedelta) -> FulfilmentClaim | None:
        query = FulfilmentRow.select().where((FulfilmentRow.order_id == order_id) & self._due(now))
        claims = self._claim_rows(query, now, lease)
        return claims[0] if claims else None

    def _claim_rows(
        self, query: pw.ModelSelect[FulfilmentRow], now: datetime, lease: timedelta
    ) -> list[FulfilmentClaim]:
        if self._skip_locked:
            query = query.for_update(skip_locked=True)
        claims = []
        for row in list(query):
            taken = (
                FulfilmentRow.update(
                    next_attempt_at=to_db_time(now + lease),
                    version=FulfilmentRow.version + 1,
                    updated_at=to_db_time(now),
                )
                .where(
                    (FulfilmentRow.order_id == row.order_id)
                    & (FulfilmentRow.version == row.version)
                    & (FulfilmentRow.status == LedgerStatus.PENDING)
                )
                .execute()
            )
            if taken:
                claims.append(FulfilmentClaim(row.order_id, row.kind, row.version + 1, row.attempts))
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
        updated = (
            FulfilmentRow.update(version=FulfilmentRow.version + 1, **changes)
            .where(
                (FulfilmentRow.order_id == claim.order_id)
                & (FulfilmentRow.version == claim.version)
                & (FulfilmentRow.status == LedgerStatus.PENDING)
            )
            .execute()
        )
        return bool(updated)

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
        GrantRow.insert(
            order_id=order.order_id,
            user_id=order.user_id,
            kind=order.kind.value,
            article_id=article_id,
            days=days,
            state=state.value,
            created_at=to_db_time(now),
        ).execute()

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
        row = MembershipRow.get_or_none(MembershipRow.user_id == user_id)
        if row is None:
            expires_at = extended(None, now, days)
            return expires_at if self._insert(user_id, expires_at, now) else None
        expires_at = extended(from_db_time(row.expires_at), now, days)
        return expires_at if self._move(row, expires_at, now) else None

    def shorten(self, user_id: str, days: int, now: datetime) -> None:
        """Take `days` off, never below now."""
        retry_on_conflict(lambda: self._try_shorten(user_id, days, now), f"membership of {user_id!r}")

    def _try_shorten(self, user_id: str, days: int, now: datetime) -> bool | None:
        row = MembershipRow.get_or_none(MembershipRow.user_id == user_id)
        if row is None:
            return True
        current = required_time(row.expires_at)
        shortened = max(now, current - timedelta(days=days))
        return True if shortened >= current or self._move(row, shortened, now) else None

    @staticmethod
    def _insert(user_id: str, expires_at: datetime, now: datetime) -> bool:
        try:
            with MembershipRow._meta.database.atomic():  # a savepoint: losing the race must not abort us
                MembershipRow.insert(
                    user_id=user_id, expires_at=to_db_time(expires_at), updated_at=to_db_time(now)
                ).execute()
        except pw.IntegrityError:
            return False
        return True

    @staticmethod
    def _move(row: MembershipRow, expires_at: datetime, now: datetime) -> bool:
        updated = (
            MembershipRow.update(
                expires_at=to_db_time(expires_at),
                version=MembershipRow.version + 1,
                updated_at=to_db_time(now),
            )
            .where((MembershipRow.user_id == row.user_id) & (MembershipRow.version == row.version))
            .execute()
        )
        return bool(updated)
