"""Fulfilment: run the handler for a paid order's kind exactly once, retry with backoff, then compensate.

The ledger row (FulfilmentRow, unique per order) is written with the PAID transition. A worker claims
due rows (the claim pushes `next_attempt_at` forward: a lease), and one transaction then flips the
ledger to SUCCEEDED by compare-and-set on the claimed version, grants, marks the order and writes the
audit row. Losing the compare-and-set rolls everything back, so two workers never both grant.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import structlog

from server.config import Settings
from server.domain.catalogue import Product, ProductKind
from server.domain.clock import Clock
from server.domain.errors import VersionConflictError
from server.domain.order import Fulfilment, Order, OrderStatus
from server.metrics import FULFILMENT
from server.service.context import Caller
from server.service.ports import AuditEvent, UnitOfWork, UnitOfWorkFactory

log = structlog.get_logger("orderpay.fulfilment")

JOB_CALLER = Caller("job:fulfilment")
COMPENSATION_REFUND_PREFIX = "FF"
ORDER_CAS_ATTEMPTS = 5
# The sweep leaves a fresh failure alone for a while: the worker that failed it is requesting the refund.
COMPENSATION_GRACE = timedelta(seconds=60)
_FULFILLABLE = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED})


class LedgerStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class GrantState(StrEnum):
    GRANTED = "GRANTED"
    READY_TO_SHIP = "READY_TO_SHIP"
    REVOKED = "REVOKED"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"  # failed, another attempt is scheduled
    FAILED = "failed"  # out of attempts: FAILED, refund requested
    ABANDONED = "abandoned"  # the order can no longer be fulfilled (refunded, held): nothing granted
    LOST = "lost"  # another worker took the row meanwhile
    NOT_DUE = "not_due"  # nothing to claim: done, not due yet, or claimed elsewhere


def compensation_refund_no(order_id: str) -> str:
    """Deterministic out_refund_no for the automatic refund, so a repeated request never doubles it."""
    return f"{COMPENSATION_REFUND_PREFIX}{order_id}"[:64]


@dataclass(frozen=True)
class FulfilmentClaim:
    order_id: str
    kind: str
    version: int  # the ledger row's version after the claim: the compare-and-set token
    attempts: int  # attempts made before this one


class GrantWriter(Protocol):
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
    ) -> None: ...
    def extend_membership(self, user_id: str, days: int, now: datetime) -> datetime: ...


class FulfilmentStore(GrantWriter, Protocol):
    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[FulfilmentClaim]: ...
    def claim_order(self, order_id: str, now: datetime, lease: timedelta) -> FulfilmentClaim | None: ...
    def settle(
        self,
        claim: FulfilmentClaim,
        now: datetime,
        *,
        status: LedgerStatus,
        attempts: int | None = None,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> bool: ...
    def oldest_due(self, now: datetime) -> datetime | None: ...
    def unrefunded_failures(self, settled_before: datetime, limit: int) -> list[str]: ...
    def revoke_grants(self, order_id: str, now: datetime, actor: str) -> object: ...


class Refunder(Protocol):
    """RefundService as the worker needs it."""

    def refund_order(
        self, order_id: str, out_refund_no: str, amount: int, reason: str, caller: Caller
    ) -> object: ...


# --- handlers ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FulfilmentContext:
    order: Order
    product: Product | None
    now: datetime
    grants: GrantWriter


Handler = Callable[[FulfilmentContext], str]  # runs inside the transaction; returns what it granted


class FulfilmentError(Exception):
    """A handler cannot grant; the attempt counts as failed and is retried."""


def fulfil_vip(ctx: FulfilmentContext) -> str:
    if ctx.product is None or not ctx.product.duration_days:
        raise FulfilmentError(f"product {ctx.order.product_id!r} has no duration_days")
    days = ctx.product.duration_days * ctx.order.quantity
    expires_at = ctx.grants.extend_membership(ctx.order.user_id, days, ctx.now)
    _record(ctx, GrantState.GRANTED, days=days)
    return f"VIP +{days}d, until {expires_at.isoformat()}"


def fulfil_article(ctx: FulfilmentContext) -> str:
    article_id = ctx.order.article_id or ctx.order.product_id
    _record(ctx, GrantState.GRANTED, article_id=article_id)
    return f"access to {article_id}"


def fulfil_goods(ctx: FulfilmentContext) -> str:
    _record(ctx, GrantState.READY_TO_SHIP)
    return "ready to ship"


def _record(
    ctx: FulfilmentContext, state: GrantState, *, days: int = 0, article_id: str | None = None
) -> None:
    order = ctx.order
    ctx.grants.record_grant(
        order.order_id, order.user_id, order.kind.value, state, ctx.now, article_id=article_id, days=days
    )


DEFAULT_HANDLERS: Mapping[str, Handler] = {
    ProductKind.VIP_PLAN: fulfil_vip,
    ProductKind.ARTICLE: fulfil_article,
    ProductKind.GOODS: fulfil_goods,
}


# --- retry policy -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_s: float = 30.0
    max_s: float = 1800.0
    jitter: float = 0.1  # added on top only, so the schedule never gets shorter than stated
    lease_s: float = (
        60.0  # how long a claimed row stays invisible; a crashed worker's row comes back after it
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.fulfilment_max_attempts,
            base_s=settings.fulfilment_backoff_base_s,
            max_s=settings.fulfilment_backoff_max_s,
        )

    def delay(self, failures: int, unit_random: float) -> timedelta:
        """After the n-th failure: min(base * 2^(n-1), max), plus up to `jitter` of that."""
        capped = min(self.base_s * 2 ** (failures - 1), self.max_s)
        return timedelta(seconds=capped * (1 + self.jitter * unit_random))

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_s)


class _LeaseLost(Exception):  # noqa: N818 - a signal inside the worker, not an error
    pass


class _NotFulfillable(Exception):  # noqa: N818
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- the worker -------------------------------------------------------------------------------------
class FulfilmentWorker:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        store: FulfilmentStore,
        *,
        policy: RetryPolicy | None = None,
        handlers: Mapping[str, Handler] | None = None,
        refunder: Refunder | None = None,
        auto_refund: bool = True,
        unit_random: Callable[[], float] = random.random,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._store = store
        self._policy = policy or RetryPolicy()
        self._handlers = dict(DEFAULT_HANDLERS if handlers is None else handlers)
        # Settable after construction: RefundService needs `revoke_grants` from this worker first.
        self.refunder = refunder
        self._auto_refund = auto_refund
        self._unit_random = unit_random

    # --- entry points ---------------------------------------------------------------------------
    def run_due(self, limit: int = 50) -> int:
        """Claim and process up to `limit` due rows; returns how many were claimed."""
        now = self._clock()
        with self._uow():
            claims = self._store.claim_due(now, limit, self._policy.lease)
        for claim in claims:
            self._process(claim)
        return len(claims)

    def run_for_order(self, order_id: str) -> Outcome:
        """Fulfil one order now (called right after payment); the periodic run is the safety net."""
        with self._uow():
            claim = self._store.claim_order(order_id, self._clock(), self._policy.lease)
        return Outcome.NOT_DUE if claim is None else self._process(claim)

    def fulfil_now(self, order_id: str) -> None:
        """`run_for_order` as the payment path's on_paid hook."""
        self.run_for_order(order_id)

    def compensate_due(self, limit: int = 50) -> int:
        """Request the refund for FAILED fulfilments whose refund request never got through."""
        if not self._auto_refund or self.refunder is None:
            return 0
        with self._uow() as uow:
            order_ids = self._store.unrefunded_failures(self._clock() - COMPENSATION_GRACE, limit)
            orders = [o for o in map(uow.orders.get, order_ids) if o is not None]
        for order in orders:
            self._request_refund(order)
        return len(orders)

    def revoke_grants(self, order_id: str, now: datetime) -> None:
        """Take back what the order granted. Runs INSIDE the caller's (refund settlement) transaction."""
        self._store.revoke_grants(order_id, now, actor="system:refund")

    def oldest_due(self) -> datetime | None:
        with self._uow():
            return self._store.oldest_due(self._clock())

    # --- one claimed row ------------------------------------------------------------------------
    def _process(self, claim: FulfilmentClaim) -> Outcome:
        try:
            self._fulfil(claim)
            outcome = Outcome.SUCCEEDED
        except _LeaseLost:
            outcome = Outcome.LOST
        except _NotFulfillable as exc:
            outcome = self._give_up(claim, exc.reason, refund=False)
        except Exception as exc:  # noqa: BLE001 - any handler or database failure is one failed attempt
            outcome = self._failed_attempt(claim, exc)
        FULFILMENT.labels(claim.kind, outcome.value).inc()
        return outcome

    def _fulfil(self, claim: FulfilmentClaim) -> None:
        handler = self._handlers.get(claim.kind)
        if handler is None:
            raise FulfilmentError(f"no fulfilment handler for kind {claim.kind!r}")
        now = self._clock()
        with self._uow() as uow:
            settled = self._store.settle(
                claim, now, status=LedgerStatus.SUCCEEDED, attempts=claim.attempts + 1, error=""
            )
            if not settled:
                raise _LeaseLost
            order = _move_fulfilment(uow, claim.order_id, Fulfilment.SUCCEEDED, "", now, strict=True)
            assert order is not None  # noqa: S101 - strict moves raise instead
            granted = handler(FulfilmentContext(order, uow.products.get(order.product_id), now, self._store))
            uow.events.record(_event(order, Fulfilment.SUCCEEDED, f"fulfilled: {granted}"), now)
        log.info("fulfilment.succeeded", order_id=claim.order_id, kind=claim.kind, granted=granted)

    def _failed_attempt(self, claim: FulfilmentClaim, exc: Exception) -> Outcome:
        attempts = claim.attempts + 1
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if attempts >= self._policy.max_attempts:
            return self._give_up(claim, error, refund=True, attempts=attempts)
        now = self._clock()
        next_at = now + self._policy.delay(attempts, self._unit_random())
        with self._uow():
            settled = self._store.settle(
                claim,
                now,
                status=LedgerStatus.PENDING,
                attempts=attempts,
                next_attempt_at=next_at,
                error=error,
            )
        log.warning(
            "fulfilment.retry",
            order_id=claim.order_id,
            attempts=attempts,
            next_attempt_at=next_at,
            error=error,
        )
        return Outcome.RETRY if settled else Outcome.LOST

    def _give_up(
        self, claim: FulfilmentClaim, reason: str, *, refund: bool, attempts: int | None = None
    ) -> Outcome:
        now = self._clock()
        with self._uow() as uow:
            if not self._store.settle(
                claim, now, status=LedgerStatus.FAILED, attempts=attempts, error=reason
            ):
                return Outcome.LOST
            order = _move_fulfilment(uow, claim.order_id, Fulfilment.FAILED, reason[:255], now, strict=False)
            if order is not None:
                uow.events.record(_event(order, Fulfilment.FAILED, f"fulfilment failed: {reason}"), now)
        log.error("fulfilment.failed", order_id=claim.order_id, reason=reason, refund=refund)
        if refund and order is not None and order.status is OrderStatus.PAID:
            self._request_refund(order)
        return Outcome.FAILED if refund else Outcome.ABANDONED

    def _request_refund(self, order: Order) -> None:
        """Outside any transaction. Failures are left to `compensate_due`, which finds the order again."""
        if not self._auto_refund or self.refunder is None:
            return
        out_refund_no = compensation_refund_no(order.order_id)
        try:
            self.refunder.refund_order(
                order.order_id,
                out_refund_no=out_refund_no,
                amount=order.refundable_fee,
                reason="fulfilment failed",
                caller=JOB_CALLER,
            )
        except Exception:  # the sweep retries; a failed request must not undo the FAILED mark
            log.exception("fulfilment.refund_request_failed", order_id=order.order_id)
        else:
            log.info("fulfilment.refund_requested", order_id=order.order_id, out_refund_no=out_refund_no)


def _move_fulfilment(
    uow: UnitOfWork, order_id: str, target: Fulfilment, reason: str, now: datetime, *, strict: bool
) -> Order | None:
    """PENDING -> target by compare-and-set on the order's version, re-reading on conflict.

    The moved order is returned with its pre-move `fulfilment` so the audit row can say where it
    came from. `strict`: raise _NotFulfillable when the order cannot take it (else return None).
    """
    for _ in range(ORDER_CAS_ATTEMPTS):
        order = uow.orders.get(order_id)
        blocker = _blocker(order, require_paid=strict)
        if blocker is not None:
            if strict:
                raise _NotFulfillable(blocker)
            return None
        assert order is not None  # noqa: S101 - _blocker says so
        moved = uow.orders.compare_and_set(
            order, order.version, fulfilment=target, fulfilment_reason=reason, updated_at=now
        )
        if moved is not None:
            return order
    raise VersionConflictError(f"order {order_id!r} kept changing; fulfilment retries later")


def _blocker(order: Order | None, *, require_paid: bool) -> str | None:
    if order is None:
        return "order not found"
    if require_paid and order.status not in _FULFILLABLE:
        return f"order is {order.status.value}"
    if order.fulfilment is not Fulfilment.PENDING:
        return f"order fulfilment is {order.fulfilment.value}"
    return None


def _event(order: Order, target: Fulfilment, cause: str) -> AuditEvent:
    return AuditEvent(
        order_id=order.order_id,
        field="fulfilment",
        from_value=order.fulfilment.value,
        to_value=target.value,
        cause=cause[:255],
        actor=JOB_CALLER.actor,
        request_id=JOB_CALLER.request_id,
    )
