"""Fulfilment: run the handler for a paid order's kind exactly once, retry with backoff, then give up.

The ledger row (unique per order) is written with the PAID transition (OrderPaid's reaction). A
worker claims due rows (the claim pushes `next_attempt_at` forward: a lease), and one transaction
then flips the ledger to SUCCEEDED by compare-and-set on the claimed version, grants, marks the order
and writes the audit row. Losing the compare-and-set rolls everything back, so two workers never
both grant. Giving up raises FulfilmentFailed in the same transaction (its reaction records the
refund); both ends raise FulfilmentDecided. The unit of work runs their reactions
(server.service.handlers): the worker publishes nothing by hand.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from server.domain.catalogue import ProductKind
from server.domain.clock import Clock
from server.domain.events import FulfilmentRequested
from server.domain.fulfilment import (
    DEFAULT_HANDLERS,
    FulfilmentClaim,
    FulfilmentContext,
    FulfilmentError,
    GrantState,
    Handler,
    LedgerStatus,
    Outcome,
    RetryPolicy,
)
from server.domain.order import FULFILLABLE, Fulfilment, Order, Transition
from server.metrics import FULFILMENT
from server.service.audit import audit
from server.service.context import Caller
from server.service.ports import UnitOfWork, UnitOfWorkFactory
from server.service.retry import Conflict, retry_on_conflict
from server.service.shapes import Batch

log = structlog.get_logger("orderpay.fulfilment")

JOB_CALLER = Caller("job:fulfilment")


@dataclass(frozen=True)
class Processed:
    outcome: Outcome


class _LeaseLost(Exception):  # noqa: N818 - a signal inside the worker, not an error
    pass


class _NotBuiltIn(Exception):  # noqa: N818 - a signal: work this row as a claim (EXTERNAL, no handler)
    def __init__(self, claim: FulfilmentClaim) -> None:
        super().__init__(claim.order_id)
        self.claim = claim


class _NotFulfillable(Exception):  # noqa: N818
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _UnitOfWorkGrants:
    """The domain's GrantWriter, bound to one unit of work."""

    def __init__(self, uow: UnitOfWork, now: datetime) -> None:
        self._uow, self._now = uow, now

    def record_grant(
        self, order: Order, state: GrantState, *, article_id: str | None = None, days: int = 0
    ) -> None:
        self._uow.grants.record(order, state, self._now, article_id=article_id, days=days)

    def extend_membership(self, user_id: str, days: int) -> datetime:
        return self._uow.memberships.extend(user_id, days, self._now)


class FulfilmentWorker:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        *,
        policy: RetryPolicy | None = None,
        handlers: Mapping[str, Handler] | None = None,
        unit_random: Callable[[], float] = random.random,
        external_deadline: timedelta = timedelta(minutes=5),
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._external_deadline = external_deadline
        self._handlers = dict(DEFAULT_HANDLERS if handlers is None else handlers)
        self._unit_random = unit_random

    # --- entry points ---------------------------------------------------------------------------
    def run_due(self, limit: int = 50) -> Batch:
        """Claim and process up to `limit` due rows."""
        with self._uow() as uow:
            claims = uow.ledger.claim_due(self._clock(), limit, self._policy.lease)
        for claim in claims:
            self._process(claim)
        return Batch(len(claims))

    def run_for_order(self, order_id: str) -> Processed:
        """Fulfil one order now (right after payment); the periodic run is the safety net.

        A built-in kind is found and settled in ONE transaction: nothing can come between finding the
        due row and settling it, so it takes no lease (the settle's compare-and-set on the version
        still makes a concurrent worker lose). Other kinds are worked from the row found, as a claim."""
        found: list[FulfilmentClaim] = []
        try:
            processed = retry_on_conflict(
                lambda: self._find_and_fulfil(order_id, found), "fulfilling the order"
            )
        except _NotBuiltIn as exc:
            return self._process(exc.claim)
        except _LeaseLost:
            processed = Processed(Outcome.LOST)
        except _NotFulfillable as exc:
            processed = self._give_up(found[-1], exc.reason, refund=False)
        except Exception as exc:  # as in _process: any handler or database failure is one attempt
            if not found:
                raise  # nothing was found to fail: the job retries the row
            processed = self._failed_attempt(found[-1], exc)
        if processed.outcome is not Outcome.NOT_DUE:
            FULFILMENT.labels(found[-1].kind, processed.outcome.value).inc()
        return processed

    def _find_and_fulfil(self, order_id: str, found: list[FulfilmentClaim]) -> Processed:
        now = self._clock()
        with self._uow() as uow:
            claim = uow.ledger.due_for_order(order_id, now)
            if claim is None:
                return Processed(Outcome.NOT_DUE)
            found.append(claim)
            handler = self._handlers.get(claim.kind)
            if claim.kind == ProductKind.EXTERNAL or handler is None:
                raise _NotBuiltIn(claim)  # this transaction wrote nothing; the claim's own path decides
            granted = self._fulfil_in(uow, claim, handler, now)
        log.info("fulfilment.succeeded", order_id=claim.order_id, kind=claim.kind, granted=granted)
        return Processed(Outcome.SUCCEEDED)

    def fulfil(self, order_id: str) -> None:
        """`run_for_order` as the prompt reaction to OrderPaid and FulfilmentReopened."""
        self.run_for_order(order_id)

    def oldest_due(self) -> datetime | None:
        with self._uow() as uow:
            return uow.ledger.oldest_due(self._clock())

    # --- one claimed row ------------------------------------------------------------------------
    def _process(self, claim: FulfilmentClaim) -> Processed:
        if claim.kind == ProductKind.EXTERNAL:
            return self._process_external(claim)
        try:
            self._fulfil(claim)
            processed = Processed(Outcome.SUCCEEDED)
        except _LeaseLost:
            processed = Processed(Outcome.LOST)
        except _NotFulfillable as exc:
            processed = self._give_up(claim, exc.reason, refund=False)
        except Exception as exc:  # noqa: BLE001 - any handler or database failure is one failed attempt
            processed = self._failed_attempt(claim, exc)
        FULFILMENT.labels(claim.kind, processed.outcome.value).inc()
        return processed

    def _fulfil(self, claim: FulfilmentClaim) -> None:
        handler = self._handlers.get(claim.kind)
        if handler is None:
            raise FulfilmentError(f"no fulfilment handler for kind {claim.kind!r}")
        granted = retry_on_conflict(lambda: self._fulfil_once(claim, handler), "fulfilling the order")
        log.info("fulfilment.succeeded", order_id=claim.order_id, kind=claim.kind, granted=granted)

    def _fulfil_once(self, claim: FulfilmentClaim, handler: Handler) -> str:
        now = self._clock()
        with self._uow() as uow:
            return self._fulfil_in(uow, claim, handler, now)

    def _fulfil_in(self, uow: UnitOfWork, claim: FulfilmentClaim, handler: Handler, now: datetime) -> str:
        if not uow.ledger.settle(
            claim, now, status=LedgerStatus.SUCCEEDED, attempts=claim.attempts + 1, error=""
        ):
            raise _LeaseLost
        order = uow.orders.get(claim.order_id)
        blocker = _blocker(order, require_paid=True)
        if blocker is not None:
            raise _NotFulfillable(blocker)
        assert order is not None  # noqa: S101 - _blocker says so
        self._move(uow, order, order.fulfilled(now))
        context = FulfilmentContext(
            order, uow.products.get(order.product_id), now, _UnitOfWorkGrants(uow, now)
        )
        granted = handler(context)
        _audit_fulfilment(uow, order, Fulfilment.SUCCEEDED, f"fulfilled: {granted}", now)
        return granted

    # --- EXTERNAL: the business fulfils; we ask, and ask again on the retry schedule -------------
    def _process_external(self, claim: FulfilmentClaim) -> Processed:
        """Each due claim is one request (FULFILMENT_REQUESTED on the feed). The ledger row stays
        PENDING until ConfirmFulfilment / FailFulfilment decides it (server.service.external); with
        no answer it comes due again after max(deadline, the schedule's delay), and after the last
        request the order fails and is refunded exactly as when a built-in handler runs out."""
        if claim.attempts >= self._policy.max_attempts:
            reason = f"no answer from the business after {claim.attempts} requests"
            processed = self._give_up(claim, reason, refund=True)
        else:
            try:
                self._request(claim)
                processed = Processed(Outcome.REQUESTED)
            except _LeaseLost:
                processed = Processed(Outcome.LOST)
            except _NotFulfillable as exc:
                processed = self._give_up(claim, exc.reason, refund=False)
        FULFILMENT.labels(claim.kind, processed.outcome.value).inc()
        return processed

    def _request(self, claim: FulfilmentClaim) -> None:
        attempt, now = claim.attempts + 1, self._clock()
        wait = max(self._external_deadline, self._policy.delay(attempt, self._unit_random()))
        with self._uow() as uow:
            order = uow.orders.get(claim.order_id)
            blocker = _blocker(order, require_paid=True)
            if blocker is not None:
                raise _NotFulfillable(blocker)
            if not uow.ledger.settle(
                claim,
                now,
                status=LedgerStatus.PENDING,
                attempts=attempt,
                next_attempt_at=now + wait,
                error="",
            ):
                raise _LeaseLost
            uow.record(FulfilmentRequested(claim.order_id, attempt))
        log.info("fulfilment.requested", order_id=claim.order_id, attempt=attempt, answer_by=now + wait)

    def _failed_attempt(self, claim: FulfilmentClaim, exc: Exception) -> Processed:
        attempts = claim.attempts + 1
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if attempts >= self._policy.max_attempts:
            return self._give_up(claim, error, refund=True, attempts=attempts)
        now = self._clock()
        next_at = now + self._policy.delay(attempts, self._unit_random())
        with self._uow() as uow:
            settled = uow.ledger.settle(
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
        return Processed(Outcome.RETRY if settled else Outcome.LOST)

    def _give_up(
        self, claim: FulfilmentClaim, reason: str, *, refund: bool, attempts: int | None = None
    ) -> Processed:
        def attempt() -> bool:
            now = self._clock()
            with self._uow() as uow:
                if not uow.ledger.settle(
                    claim, now, status=LedgerStatus.FAILED, attempts=attempts, error=reason
                ):
                    raise _LeaseLost
                order = uow.orders.get(claim.order_id)
                if _blocker(order, require_paid=False) is None:
                    assert order is not None  # noqa: S101 - _blocker says so
                    self._move(uow, order, order.fulfilment_failed(reason, now, refund=refund))
                    _audit_fulfilment(uow, order, Fulfilment.FAILED, f"fulfilment failed: {reason}", now)
            return True  # None would mean "lost a race" to retry_on_conflict

        try:
            retry_on_conflict(attempt, "giving up on fulfilment")
        except _LeaseLost:
            return Processed(Outcome.LOST)
        log.error("fulfilment.failed", order_id=claim.order_id, reason=reason, refund=refund)
        return Processed(Outcome.FAILED if refund else Outcome.ABANDONED)

    @staticmethod
    def _move(uow: UnitOfWork, order: Order, transition: Transition) -> None:
        if uow.orders.save(order, transition.order) is None:
            raise Conflict  # the order moved (e.g. a refund): roll back, re-read, decide again
        uow.record(*transition.events)


def _audit_fulfilment(uow: UnitOfWork, order: Order, target: Fulfilment, cause: str, now: datetime) -> None:
    uow.audit.record(audit(order, "fulfilment", order.fulfilment, target, cause[:255], JOB_CALLER), now)


def _blocker(order: Order | None, *, require_paid: bool) -> str | None:
    if order is None:
        return "order not found"
    if require_paid and order.status not in FULFILLABLE:
        return f"order is {order.status.value}"
    if order.fulfilment is not Fulfilment.PENDING:
        return f"order fulfilment is {order.fulfilment.value}"
    return None
