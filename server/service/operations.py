"""The operator's use cases: resolve a HELD order, retry a FAILED fulfilment, replay a stored
notification, retry or revoke background work. Admin only (the entrypoints check the role).

Every action writes an `operation` audit row (who, why, request id) in the transaction that decides it,
and is either idempotent (a refund resolution, a replay, a retry) or guarded by the order's version
(`expected_version`, 0 = current): concurrent resolutions of one order leave exactly one outcome.
Rules live in `server.domain.operations`; money and fulfilment move through the existing services.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import structlog

from server.domain.clock import Clock
from server.domain.errors import (
    FieldViolation,
    InvalidArgumentError,
    RefundExceedsPaidError,
    RefundNotFoundError,
    VersionConflictError,
)
from server.domain.fulfilment import LedgerStatus
from server.domain.money import yuan
from server.domain.operations import (
    Move,
    Resolution,
    check_version,
    is_resolved_by_refund,
    operations_refund_no,
    require_reason,
    resolve_held,
    retry_fulfilment,
)
from server.domain.order import Fulfilment, Order
from server.domain.provider import ResolveAbnormal
from server.domain.refund import Refund
from server.service.audit import audit
from server.service.context import Caller
from server.service.lookups import require_order
from server.service.ports import (
    AbnormalRefundResolver,
    NotificationReplayer,
    ReadFactory,
    ReconResolver,
    Refunder,
    UnitOfWork,
    UnitOfWorkFactory,
)

log = structlog.get_logger("orderpay.operations")
OPERATION = "operation"  # the audit field of every operator action


class JobKind(StrEnum):
    FULFILMENT = "fulfilment"  # key: order_id (the outbox/ledger row)
    REFUND_POLL = "refund_poll"  # key: out_refund_no


@dataclass(frozen=True)
class OperationResult:
    action: str
    outcome: str  # done | already_done | <a notification outcome>
    message: str
    order: Order | None = None
    refund: Refund | None = None


class OperationsService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        *,
        refunds: Refunder | None = None,
        notifications: NotificationReplayer | None = None,
        read: ReadFactory | None = None,
        abnormal: AbnormalRefundResolver | None = None,
        recon: ReconResolver | None = None,
    ) -> None:
        self._abnormal = abnormal
        self._recon = recon
        self._uow = uow
        self._read: ReadFactory = read or uow
        self._clock = clock
        self._refunds = refunds
        self._notifications = notifications

    # --- HELD orders ------------------------------------------------------------------------------
    def resolve_held(
        self, order_id: str, resolution: Resolution, reason: str, expected_version: int, caller: Caller
    ) -> OperationResult:
        why = require_reason(reason)
        with self._uow() as uow:
            order = require_order(uow, order_id)
            repeated = resolution is Resolution.REFUND and is_resolved_by_refund(order)
            if not repeated:
                check_version(order, expected_version)
                move = resolve_held(order, resolution, why, uow.refunds.committed_amount(order_id))
                # ACCEPT raises FulfilmentReopened: its reactions reopen the ledger and fulfil after commit.
                order = self._move(uow, order, move, f"resolve {resolution.value.lower()}", why, caller)
            mine = uow.refunds.get(operations_refund_no(order_id))
            # What is not already coming back (e.g. the automatic refund of a payment after close).
            amount = (
                mine.amount if mine is not None else order.paid_fee - uow.refunds.committed_amount(order_id)
            )
        if resolution is Resolution.ACCEPT:
            order = self._reload(order_id)  # fulfilled on commit, or left to the fulfilment job
            message = f"accepted; fulfilment is {order.fulfilment.value}"
            return OperationResult("resolve_accept", "done", message, order)
        outcome = "already_done" if repeated else "done"
        if amount <= 0:
            message = "everything paid is already being refunded; nothing more to send"
            return OperationResult("resolve_refund", outcome, message, self._reload(order_id))
        refund = self._refund(order, amount, why, caller)
        return OperationResult(
            "resolve_refund",
            outcome,
            f"refund {refund.out_refund_no} is {refund.status.value}",
            self._reload(order_id),
            refund,
        )

    def _refund(self, order: Order, amount: int, reason: str, caller: Caller) -> Refund:
        if self._refunds is None:
            raise InvalidArgumentError([FieldViolation("resolution", "refunds need a credentials bundle")])
        # Idempotent on the deterministic out_refund_no: repeating the resolution re-sends, never doubles.
        out_refund_no = operations_refund_no(order.order_id)
        try:
            return self._refunds.refund_order(order.order_id, out_refund_no, amount, reason[:80], caller)
        except RefundExceedsPaidError:
            # A concurrent repeat of this resolution recorded the same refund between our reads.
            with self._read() as uow:
                mine = uow.refunds.get(out_refund_no)
            if mine is None:
                raise
            return mine

    # --- FAILED fulfilment ------------------------------------------------------------------------
    def retry_fulfilment(
        self, order_id: str, reason: str, expected_version: int, caller: Caller
    ) -> OperationResult:
        why = require_reason(reason)
        with self._uow() as uow:
            order = require_order(uow, order_id)
            check_version(order, expected_version)
            move = retry_fulfilment(order, uow.refunds.committed_amount(order_id))
            self._move(uow, order, move, "retry fulfilment", why, caller)  # raises FulfilmentReopened
        order = self._reload(order_id)
        message = f"fulfilment ran again: {order.fulfilment.value}"
        return OperationResult("retry_fulfilment", "done", message, order)

    # --- stored notifications ---------------------------------------------------------------------
    def replay_notification(self, notification_id: str, reason: str, caller: Caller) -> OperationResult:
        """The stored raw delivery, verified and applied again through the notify path: idempotent."""
        why = require_reason(reason)
        if self._notifications is None:
            raise InvalidArgumentError([FieldViolation("notification_id", "replay needs the notify service")])
        receipt = self._notifications.replay(notification_id)
        order: Order | None = None
        if receipt.out_trade_no:
            with self._uow() as uow:
                order = uow.orders.get_by_out_trade_no(receipt.out_trade_no)
                if order is not None:
                    cause = f"replay {notification_id}: {receipt.outcome}; {why}"
                    uow.audit.record(
                        audit(order, OPERATION, None, "REPLAY_NOTIFICATION", cause, caller), self._clock()
                    )
        log.info(
            "operations.replay", notification_id=notification_id, outcome=receipt.outcome, actor=caller.actor
        )
        return OperationResult("replay_notification", receipt.outcome, f"replayed: {receipt.outcome}", order)

    # --- ABNORMAL refunds and reconciliation exceptions -----------------------------------------
    def resolve_abnormal_refund(self, command: ResolveAbnormal, caller: Caller) -> OperationResult:
        """The use case behind `ops resolve-abnormal` (PayService.ResolveAbnormalRefund): the refund's
        money goes to the payer's new card or the merchant's account; it audits the route and reason."""
        if self._abnormal is None:
            raise InvalidArgumentError(
                [FieldViolation("route", "abnormal refunds need a credentials bundle")]
            )
        refund = self._abnormal.resolve_abnormal(command, caller)
        log.info("operations.resolve_abnormal", out_refund_no=refund.out_refund_no, actor=caller.actor)
        message = (
            f"refund {refund.out_refund_no} of {yuan(refund.amount)} is {refund.status.value} now,"
            f" sent to {command.route.value}"
        )
        return OperationResult("resolve_abnormal_refund", "done", message, refund=refund)

    def resolve_recon_exception(self, exception_id: int, reason: str, caller: Caller) -> OperationResult:
        """`orderpay recon resolve ID --reason …` from the console: the same use case, audited."""
        if self._recon is None:
            raise InvalidArgumentError([FieldViolation("exception_id", "reconciliation needs credentials")])
        closed = self._recon.resolve(exception_id, require_reason(reason), caller)
        message = f"exception #{closed.id} {closed.kind.value} resolved"
        return OperationResult("resolve_recon_exception", "done", message)

    # --- background work --------------------------------------------------------------------------
    def retry_job(self, kind: JobKind, key: str, reason: str, caller: Caller) -> OperationResult:
        why = require_reason(reason)
        if kind is JobKind.REFUND_POLL:
            refund = self._require_refunds().sync_refund(key, caller)  # ask WeChat now (re-submits if needed)
            self._audit_refund(refund, "RETRY_REFUND_POLL", why, caller)
            return OperationResult(
                "retry_job", "done", f"refund {key} is {refund.status.value}", refund=refund
            )
        with self._uow() as uow:
            order = require_order(uow, key)
            if uow.ledger.status(key) is not LedgerStatus.FAILED:  # FAILED: the fulfilment retry's own rule
                if not uow.ledger.due_now(key, self._clock()):
                    raise VersionConflictError("no pending fulfilment to retry for this order")
                uow.audit.record(
                    audit(order, OPERATION, None, "RETRY_FULFILMENT_JOB", why, caller), self._clock()
                )
                return OperationResult("retry_job", "done", "fulfilment is due now", order)
        return self.retry_fulfilment(key, why, 0, caller)

    def revoke_job(self, kind: JobKind, key: str, reason: str, caller: Caller) -> OperationResult:
        why = require_reason(reason)
        now = self._clock()
        if kind is JobKind.REFUND_POLL:
            with self._uow() as uow:
                refund = uow.refunds.get(key)
                if refund is None:
                    raise RefundNotFoundError(f"refund {key!r} not found")
                if not uow.refunds.stop_polling(key, now):
                    return OperationResult(
                        "revoke_job", "already_done", "refund is not being polled", refund=refund
                    )
                order = require_order(uow, refund.order_id)
                uow.audit.record(
                    audit(order, OPERATION, None, "REVOKE_REFUND_POLL", f"{key}: {why}", caller), now
                )
            return OperationResult("revoke_job", "done", f"stopped polling {key}", order, refund)
        with self._uow() as uow:
            order = require_order(uow, key)
            if not uow.ledger.stop(key, now, f"revoked by operator: {why}"):
                return OperationResult("revoke_job", "already_done", "no pending fulfilment", order)
            move = Move(Fulfilment.FAILED, f"REVOKED: {why}"[:255], "REVOKE")
            order = self._move(uow, order, move, "revoke fulfilment", why, caller)
        return OperationResult("revoke_job", "done", "fulfilment revoked", order)

    # --- shared -----------------------------------------------------------------------------------
    def _move(
        self, uow: UnitOfWork, order: Order, move: Move, action: str, why: str, caller: Caller
    ) -> Order:
        now = self._clock()
        moved = uow.orders.save(
            order,
            replace(
                order, fulfilment=move.fulfilment, fulfilment_reason=move.fulfilment_reason, updated_at=now
            ),
        )
        if moved is None:  # another operator (or the payment path) got there first
            raise VersionConflictError(
                "the order changed meanwhile; look again",
                metadata={"current_version": str(order.version + 1)},
            )
        uow.audit.record(
            audit(order, OPERATION, order.fulfilment, move.audit_to, f"{action}: {why}", caller), now
        )
        if move.fulfilment is not order.fulfilment:
            uow.audit.record(
                audit(order, "fulfilment", order.fulfilment, move.fulfilment, f"operator: {why}", caller), now
            )
        uow.record(*move.events)
        return moved

    def _audit_refund(self, refund: Refund, what: str, why: str, caller: Caller) -> None:
        with self._uow() as uow:
            order = require_order(uow, refund.order_id)
            uow.audit.record(
                audit(order, OPERATION, None, what, f"{refund.out_refund_no}: {why}", caller), self._clock()
            )

    def _require_refunds(self) -> Refunder:
        if self._refunds is None:
            raise InvalidArgumentError([FieldViolation("kind", "refund polls need a credentials bundle")])
        return self._refunds

    def _reload(self, order_id: str) -> Order:
        with self._read() as uow:
            return require_order(uow, order_id)
