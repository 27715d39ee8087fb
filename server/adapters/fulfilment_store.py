"""Peewee side of fulfilment: claiming ledger rows, recording grants, moving memberships.

Every method runs inside the caller's transaction (the unit of work, or the refund settlement):
nothing here opens one, so a grant and its ledger row commit or roll back together.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import peewee as pw

from server.adapters.repositories import from_db_time, to_db_time
from server.adapters.tables import FulfilmentRow, GrantRow, MembershipRow, OrderEventRow, OrderRow, RefundRow
from server.domain.errors import VersionConflictError
from server.domain.membership import extended
from server.service.fulfilment import COMPENSATION_REFUND_PREFIX, FulfilmentClaim, GrantState, LedgerStatus

MEMBERSHIP_CAS_ATTEMPTS = 5
# Refunds that already cover the order: the compensation sweep leaves such orders to whoever made them.
_LIVE_REFUND_STATES = ("PROCESSING", "SUCCESS")


class PeeweeFulfilmentStore:
    def __init__(self, db: pw.Database) -> None:
        # PostgreSQL lets concurrent claimers skip each other's rows; SQLite serialises writers anyway.
        self._skip_locked = not isinstance(db, pw.SqliteDatabase)

    # --- the ledger -----------------------------------------------------------------------------
    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[FulfilmentClaim]:
        """Take up to `limit` due PENDING rows; pushing next_attempt_at forward is the lease."""
        query = (
            FulfilmentRow.select()
            .where(
                (FulfilmentRow.status == LedgerStatus.PENDING)
                & (FulfilmentRow.next_attempt_at <= to_db_time(now))
            )
            .order_by(FulfilmentRow.next_attempt_at)
            .limit(limit)
        )
        return self._claim_rows(query, now, lease)

    def claim_order(self, order_id: str, now: datetime, lease: timedelta) -> FulfilmentClaim | None:
        query = FulfilmentRow.select().where(
            (FulfilmentRow.order_id == order_id)
            & (FulfilmentRow.status == LedgerStatus.PENDING)
            & (FulfilmentRow.next_attempt_at <= to_db_time(now))
        )
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

    def oldest_due(self, now: datetime) -> datetime | None:
        oldest = (
            FulfilmentRow.select(pw.fn.MIN(FulfilmentRow.next_attempt_at))
            .where(
                (FulfilmentRow.status == LedgerStatus.PENDING)
                & (FulfilmentRow.next_attempt_at <= to_db_time(now))
            )
            .scalar()
        )
        return from_db_time(oldest)

    def unrefunded_failures(self, settled_before: datetime, limit: int) -> list[str]:
        """FAILED fulfilments of still-PAID orders that no refund covers yet (the compensation sweep)."""
        live_refund = RefundRow.select(RefundRow.out_refund_no).where(
            (RefundRow.order_id == FulfilmentRow.order_id)
            & (
                RefundRow.status.in_(_LIVE_REFUND_STATES)
                | (RefundRow.out_refund_no == compensation_refund_no_sql())
            )
        )
        query = (
            FulfilmentRow.select(FulfilmentRow.order_id)
            .join(OrderRow, on=(OrderRow.order_id == FulfilmentRow.order_id))
            .where(
                (FulfilmentRow.status == LedgerStatus.FAILED)
                & (FulfilmentRow.updated_at <= to_db_time(settled_before))
                & (OrderRow.status == "PAID")
                & ~pw.fn.EXISTS(live_refund)
            )
            .order_by(FulfilmentRow.updated_at)
            .limit(limit)
        )
        return [row.order_id for row in query]

    # --- grants ----------------------------------------------------------------------------------
    def record_grant(
        self,
        order_id: str,
        user_id: str,
        kind: str,
        state: GrantState,
        now: datetime,
        *,
        article_id: str | None = None,
        days: int = 0,
    ) -> None:
        GrantRow.insert(
            order_id=order_id,
            user_id=user_id,
            kind=kind,
            article_id=article_id,
            days=days,
            state=state.value,
            created_at=to_db_time(now),
        ).execute()

    def extend_membership(self, user_id: str, days: int, now: datetime) -> datetime:
        """expires_at = max(now, current) + days, by compare-and-set on the membership's version."""
        for _ in range(MEMBERSHIP_CAS_ATTEMPTS):
            row = MembershipRow.get_or_none(MembershipRow.user_id == user_id)
            if row is None:
                expires_at = extended(None, now, days)
                if self._insert_membership(user_id, expires_at, now):
                    return expires_at
                continue
            expires_at = extended(from_db_time(row.expires_at), now, days)
            if self._move_membership(row, expires_at, now):
                return expires_at
        raise VersionConflictError(f"membership of {user_id!r} kept changing; giving up for now")

    @staticmethod
    def _insert_membership(user_id: str, expires_at: datetime, now: datetime) -> bool:
        try:
            with MembershipRow._meta.database.atomic():  # a savepoint: losing the race must not abort us
                MembershipRow.insert(
                    user_id=user_id, expires_at=to_db_time(expires_at), updated_at=to_db_time(now)
                ).execute()
        except pw.IntegrityError:
            return False
        return True

    @staticmethod
    def _move_membership(row: MembershipRow, expires_at: datetime, now: datetime) -> bool:
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

    def revoke_grants(self, order_id: str, now: datetime, actor: str) -> GrantRow | None:
        """Take back what the order granted; VIP days come off the membership, never below now."""
        grant = GrantRow.get_or_none((GrantRow.order_id == order_id) & (GrantRow.state != GrantState.REVOKED))
        if grant is None:
            return None
        if grant.days:
            self._shorten_membership(grant.user_id, grant.days, now)
        GrantRow.update(state=GrantState.REVOKED.value, revoked_at=to_db_time(now)).where(
            GrantRow.order_id == grant.order_id
        ).execute()
        OrderEventRow.insert(
            order_id=order_id,
            field="grant",
            from_value=grant.state,
            to_value=GrantState.REVOKED.value,
            cause="refunded: grant taken back",
            actor=actor,
            created_at=to_db_time(now),
        ).execute()
        return grant

    def _shorten_membership(self, user_id: str, days: int, now: datetime) -> None:
        for _ in range(MEMBERSHIP_CAS_ATTEMPTS):
            row = MembershipRow.get_or_none(MembershipRow.user_id == user_id)
            if row is None:
                return
            current = from_db_time(row.expires_at)
            assert current is not None  # noqa: S101 - the column is NOT NULL
            shortened = max(now, current - timedelta(days=days))
            if shortened >= current or self._move_membership(row, shortened, now):
                return
        raise VersionConflictError(f"membership of {user_id!r} kept changing; giving up for now")


def compensation_refund_no_sql() -> pw.Node:
    """`compensation_refund_no` in SQL (order ids are at most 40 characters, so no truncation)."""
    return pw.Value(COMPENSATION_REFUND_PREFIX).concat(FulfilmentRow.order_id)
