"""Refund use cases: the row is written before WeChat is called, so a timeout never loses or doubles one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog

from server.domain.clock import Clock
from server.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidStateTransitionError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RefundExceedsPaidError,
    RefundNotFoundError,
)
from server.domain.order import Order, OrderStatus
from server.domain.refund import Refund, RefundStatus
from server.domain.validation import OUT_REFUND_NO, Violations
from server.service.audit import audit
from server.service.context import Caller
from server.service.errors import TransientError
from server.service.lookups import require_order
from server.service.payments import CAS_ATTEMPTS, ApplyResult
from server.service.ports import PaymentGateway, UnitOfWork, UnitOfWorkFactory

log = structlog.get_logger("orderpay.refunds")
RETRY_SUBMIT_AFTER = timedelta(seconds=5)
REFUNDABLE = {OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED}

RevokeGrants = Callable[[str, datetime], None]
REFUND_SETTLER = Caller("system:refund")


def _no_revoke(order_id: str, now: datetime) -> None:
    del order_id, now


class RefundService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        gateway: PaymentGateway,
        notify_url: str,
        poll_schedule_s: tuple[float, ...],
        read: UnitOfWorkFactory | None = None,
    ) -> None:
        self._uow = uow
        self._read = read or uow  # committed-data reads, outside the writers' queue
        self._clock = clock
        self._gateway = gateway
        self._notify_url = notify_url
        self._schedule = poll_schedule_s or (60.0,)
        # Takes back what a fully refunded order granted; runs inside the settlement transaction.
        self.revoke_grants: RevokeGrants = _no_revoke

    # --- create -------------------------------------------------------------------------------
    def refund_order(
        self, order_id: str, out_refund_no: str, amount: int, reason: str, caller: Caller
    ) -> Refund:
        _validate(order_id, out_refund_no, amount, reason)
        for _ in range(CAS_ATTEMPTS):
            refund = self._record(order_id, out_refund_no, amount, reason, caller)
            if refund is not None:
                return refund if refund.submitted or refund.status.final else self._submit(refund)
        raise TransientError("order kept changing while recording the refund")

    def _record(
        self, order_id: str, out_refund_no: str, amount: int, reason: str, caller: Caller
    ) -> Refund | None:
        with self._uow() as uow:
            existing = uow.refunds.get(out_refund_no)
            if existing is not None:
                if (existing.order_id, existing.amount) != (order_id, amount):
                    raise IdempotencyKeyReusedError(
                        "out_refund_no was already used for a different refund",
                        metadata={"order_id": existing.order_id},
                    )
                return existing
            order = require_order(uow, order_id)
            refundable = order.status in REFUNDABLE or (
                order.status is OrderStatus.CLOSED and order.paid_fee > 0
            )
            if not refundable:
                raise InvalidStateTransitionError(
                    f"a {order.status} order cannot be refunded", metadata={"from": order.status.value}
                )
            committed = uow.refunds.committed_amount(order_id)
            if committed + amount > order.paid_fee:
                raise RefundExceedsPaidError(
                    "refunds would exceed the amount paid",
                    metadata={"refundable": str(order.paid_fee - committed), "paid_fee": str(order.paid_fee)},
                )
            now = self._clock()
            # Bumping the order's version serialises concurrent refunds of one order.
            if uow.orders.compare_and_set(order, order.version, updated_at=now) is None:
                return None
            refund = Refund(
                out_refund_no=out_refund_no,
                order_id=order_id,
                amount=amount,
                order_total=order.total_fee,
                status=RefundStatus.PROCESSING,
                reason=reason,
                submitted=False,
                version=1,
                created_at=now,
                updated_at=now,
            )
            uow.refunds.insert(refund)
            uow.events.record(
                audit(order, "refund", None, out_refund_no, f"refund {amount} requested", caller), now
            )
            return refund

    def _submit(self, refund: Refund) -> Refund:
        """Send (or re-send: same out_refund_no, so WeChat refunds once) and record the answer."""
        with self._read() as uow:
            order = require_order(uow, refund.order_id)
        body = {
            "out_trade_no": order.out_trade_no,
            "out_refund_no": refund.out_refund_no,
            "notify_url": self._notify_url,
            "amount": {"refund": refund.amount, "total": refund.order_total, "currency": "CNY"},
        }
        if refund.reason:
            body["reason"] = refund.reason
        try:
            answer = self._gateway.refund(body)
        except ProviderUnavailableError:
            log.warning("refund.submit_deferred", out_refund_no=refund.out_refund_no)
            return self._update(refund.out_refund_no, next_poll_at=self._clock() + RETRY_SUBMIT_AFTER)
        except ProviderRejectedError as error:
            self._update(
                refund.out_refund_no, status=RefundStatus.ABNORMAL, submitted=True, next_poll_at=None
            )
            code = error.metadata.get("provider_code")
            log.warning("refund.rejected", out_refund_no=refund.out_refund_no, code=code)
            raise
        status = str(answer.get("status", "PROCESSING"))
        updated = self._update(
            refund.out_refund_no,
            submitted=True,
            refund_id=str(answer.get("refund_id") or "") or None,
            next_poll_at=self._clock() + timedelta(seconds=self._schedule[0]),
        )
        if status != RefundStatus.PROCESSING.value:
            return self._settle(refund.out_refund_no, status, answer, source="refund-api").refund or updated
        return updated

    # --- settle -------------------------------------------------------------------------------
    def apply_refund(self, resource: Mapping[str, Any], *, source: str) -> ApplyResult:
        out_refund_no = str(resource.get("out_refund_no", ""))
        status = str(resource.get("refund_status") or resource.get("status") or "")
        if status not in {s.value for s in RefundStatus} or status == RefundStatus.PROCESSING.value:
            return ApplyResult("not_success")
        result = self._settle(out_refund_no, status, resource, source=source)
        return ApplyResult(result.outcome, result.order)

    def _settle(
        self, out_refund_no: str, status: str, resource: Mapping[str, Any], *, source: str
    ) -> _Settled:
        for _ in range(CAS_ATTEMPTS):
            try:
                with self._uow() as uow:
                    settled = self._settle_once(uow, out_refund_no, RefundStatus(status), resource, source)
            except _RetrySettlement:
                continue  # the order moved under us: the whole settlement rolled back
            if settled is not None:
                return settled
        raise TransientError("refund kept changing while settling")

    def _settle_once(
        self,
        uow: UnitOfWork,
        out_refund_no: str,
        status: RefundStatus,
        resource: Mapping[str, Any],
        source: str,
    ) -> _Settled | None:
        refund = uow.refunds.get(out_refund_no)
        if refund is None:
            log.error("refund.unknown", out_refund_no=out_refund_no, source=source)
            return _Settled("refund_unknown", None, None)
        order = require_order(uow, refund.order_id)
        if refund.status.final:
            return _Settled("duplicate", refund, order)
        if order.status is OrderStatus.UNPAID:
            raise TransientError("refund settled before the payment was applied; retry later")
        now = self._clock()
        changes: dict[str, Any] = {
            "status": status,
            "submitted": True,
            "updated_at": now,
            "next_poll_at": None,
        }
        if resource.get("refund_id"):
            changes["refund_id"] = str(resource["refund_id"])
        if status is RefundStatus.SUCCESS:
            changes["succeeded_at"] = _time(resource.get("success_time")) or now
        settled = uow.refunds.compare_and_set(refund, **changes)
        if settled is None:
            return None
        if status is RefundStatus.SUCCESS:
            order = self._credit(uow, order, refund, now)
        caller = Caller(f"system:{source}")
        uow.events.record(
            audit(order, "refund", refund.status, f"{out_refund_no}:{status}", "refund settled", caller), now
        )
        return _Settled("applied", settled, order)

    def _credit(self, uow: UnitOfWork, order: Order, refund: Refund, now: datetime) -> Order:
        refunded = order.refunded_fee + refund.amount
        target = order.status
        if order.status in REFUNDABLE:
            target = OrderStatus.REFUNDED if refunded >= order.paid_fee else OrderStatus.PARTIALLY_REFUNDED
        updated = uow.orders.compare_and_set(
            order, order.version, refunded_fee=refunded, status=target, updated_at=now
        )
        if updated is None:
            raise _RetrySettlement
        if target is not order.status:
            cause = f"refund {refund.out_refund_no} settled"
            uow.events.record(audit(order, "status", order.status, target, cause, REFUND_SETTLER), now)
        if target is OrderStatus.REFUNDED:
            self.revoke_grants(order.order_id, now)
        return updated

    # --- sync ---------------------------------------------------------------------------------
    def get_refund(self, out_refund_no: str, sync: bool, caller: Caller) -> Refund:
        if sync:
            return self.sync_refund(out_refund_no, caller)
        with self._read() as uow:
            refund = uow.refunds.get(out_refund_no)
        if refund is None:
            raise RefundNotFoundError(f"refund {out_refund_no!r} not found")
        return refund

    def sync_refund(self, out_refund_no: str, caller: Caller) -> Refund:
        refund = self.get_refund(out_refund_no, False, caller)
        if refund.status.final:
            return refund
        if not refund.submitted:
            return self._submit(refund)
        answer = self._gateway.query_refund(out_refund_no)
        status = str(answer.get("status", "PROCESSING"))
        if status != RefundStatus.PROCESSING.value:
            return self._settle(out_refund_no, status, answer, source="poll").refund or refund
        attempts = refund.poll_attempts + 1
        delay = self._schedule[min(attempts, len(self._schedule) - 1)]
        return self._update(
            out_refund_no, poll_attempts=attempts, next_poll_at=self._clock() + timedelta(seconds=delay)
        )

    def _update(self, out_refund_no: str, **changes: Any) -> Refund:
        for _ in range(CAS_ATTEMPTS):
            with self._uow() as uow:
                refund = uow.refunds.get(out_refund_no)
                if refund is None:
                    raise RefundNotFoundError(f"refund {out_refund_no!r} not found")
                updated = uow.refunds.compare_and_set(refund, updated_at=self._clock(), **changes)
            if updated is not None:
                return updated
        raise TransientError("refund kept changing")


class _RetrySettlement(Exception):  # noqa: N818 - internal: roll the settlement back and try again
    pass


class _Settled:
    def __init__(self, outcome: str, refund: Refund | None, order: Order | None) -> None:
        self.outcome = outcome
        self.refund = refund
        self.order = order


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _validate(order_id: str, out_refund_no: str, amount: int, reason: str) -> None:
    v = Violations()
    v.identifier("order_id", order_id, max_len=40)
    v.pattern("out_refund_no", out_refund_no, OUT_REFUND_NO, "must be 1-64 characters of [0-9A-Za-z_-|*@]")
    v.int_range("amount", amount, 1, 10**12)
    v.text("reason", reason, 80)
    v.raise_if_any()
