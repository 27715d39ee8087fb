"""The periodic tasks. Each claims its rows in one short transaction, then calls an idempotent use case
per row with no transaction open, so a slow WeChat Pay call never holds a lock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import structlog

from server.domain.clock import Clock
from server.domain.errors import InvalidStateTransitionError, ProviderUnavailableError, VersionConflictError
from server.service.context import Caller
from server.service.ports import (
    FulfilmentRunner,
    NotificationReplayer,
    OrderCloser,
    PaymentSyncer,
    Refunder,
    UnitOfWorkFactory,
)
from server.service.shapes import JobResult

log = structlog.get_logger("orderpay.jobs")

DEFAULT_LEASE = timedelta(seconds=60)  # a claimed row is invisible this long; a crash frees it after


def _each(
    task: str, items: Iterable[str], work: Callable[[str], object], expected: tuple[type[Exception], ...] = ()
) -> int:
    """Run `work` per item; count failures. `expected` exceptions mean someone else got there first."""
    errors = 0
    for item in items:
        try:
            work(item)
        except expected as exc:
            log.info("job.item_skipped", job=task, item=item, reason=type(exc).__name__)
        except ProviderUnavailableError as exc:  # the lease runs out and the next run retries
            errors += 1
            log.warning("job.item_deferred", job=task, item=item, error=str(exc))
        except Exception:  # one bad row must not starve the rest of the batch
            errors += 1
            log.exception("job.item_failed", job=task, item=item)
    return errors


class FulfilmentTask:
    name = "fulfilment"

    def __init__(self, worker: FulfilmentRunner, limit: int = 50) -> None:
        self._worker = worker
        self._limit = limit

    def run_once(self) -> JobResult:
        batch = self._worker.run_due(self._limit)  # its units of work run the events' reactions
        return JobResult(items=batch.claimed, more=batch.claimed >= self._limit)

    def oldest_due(self) -> datetime | None:
        return self._worker.oldest_due()


class ExpiryTask:
    """Overdue UNPAID orders: close at WeChat first (paid there -> PAID instead), then locally."""

    name = "expiry"
    caller = Caller("job:expiry")

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        orders: OrderCloser,
        *,
        limit: int = 100,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._uow, self._clock, self._orders = uow, clock, orders
        self._limit, self._lease = limit, lease

    def run_once(self) -> JobResult:
        with self._uow() as uow:
            order_ids = uow.claims.claim_overdue_unpaid(self._clock(), self._limit, self._lease)
        # InvalidStateTransition: paid at WeChat, or closed meanwhile. VersionConflict: changed under us.
        errors = _each(
            self.name,
            order_ids,
            lambda order_id: self._orders.close_order(order_id, self.caller),
            expected=(InvalidStateTransitionError, VersionConflictError),
        )
        return JobResult(len(order_ids), errors, more=len(order_ids) >= self._limit)

    def oldest_due(self) -> datetime | None:
        with self._uow() as uow:
            return uow.claims.oldest_overdue_unpaid(self._clock())


class ReconcileTask:
    """UNPAID orders with a prepay and no news: ask WeChat Pay, along the reconcile schedule."""

    name = "reconcile"
    caller = Caller("job:reconcile")

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        payments: PaymentSyncer,
        *,
        limit: int = 100,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._uow, self._clock, self._payments = uow, clock, payments
        self._limit, self._lease = limit, lease

    def run_once(self) -> JobResult:
        with self._uow() as uow:
            order_ids = uow.claims.claim_due_syncs(self._clock(), self._limit, self._lease)
        errors = _each(self.name, order_ids, self._sync)
        return JobResult(len(order_ids), errors, more=len(order_ids) >= self._limit)

    def _sync(self, order_id: str) -> None:
        try:
            self._payments.sync_payment(order_id, self.caller)
        finally:  # back off whether or not WeChat answered; PAID orders drop out of the schedule
            self._payments.schedule_next_sync(order_id)

    def oldest_due(self) -> datetime | None:
        with self._uow() as uow:
            return uow.claims.oldest_due_sync(self._clock())


class RefundPollTask:
    """PROCESSING refunds: submit the unsubmitted, query the rest (sync_refund reschedules)."""

    name = "refunds"
    caller = Caller("job:refunds")

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        refunds: Refunder,
        *,
        limit: int = 100,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._uow, self._clock, self._refunds = uow, clock, refunds
        self._limit, self._lease = limit, lease

    def run_once(self) -> JobResult:
        with self._uow() as uow:
            refund_nos = uow.claims.claim_due_refund_polls(self._clock(), self._limit, self._lease)
        errors = _each(self.name, refund_nos, lambda no: self._refunds.sync_refund(no, self.caller))
        return JobResult(len(refund_nos), errors, more=len(refund_nos) >= self._limit)

    def oldest_due(self) -> datetime | None:
        with self._uow() as uow:
            return uow.claims.oldest_due_refund_poll(self._clock())


class NotificationTask:
    """Stored notifications that were never finished (crash, transient fault): apply them again."""

    name = "notifications"

    def __init__(self, service: NotificationReplayer, older_than_s: float = 30.0, limit: int = 100) -> None:
        self._service = service
        self._older_than_s = older_than_s
        self._limit = limit

    def run_once(self) -> JobResult:
        finished = self._service.reprocess_pending(older_than_s=self._older_than_s, limit=self._limit)
        return JobResult(items=finished, more=finished >= self._limit)

    def oldest_due(self) -> datetime | None:
        return None  # the notification store owns that query; its own metrics cover it
