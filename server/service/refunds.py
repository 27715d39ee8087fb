"""Refund use cases: the row is written before WeChat is called, so a timeout never loses or doubles one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from server.domain.clock import Clock
from server.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidStateTransitionError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RefundNotFoundError,
)
from server.domain.events import RefundRequested, RefundSettled
from server.domain.money import yuan
from server.domain.order import Order, OrderStatus
from server.domain.outcomes import ApplyOutcome
from server.domain.provider import (
    NOTIFY_SOURCE,
    RefundReport,
    RefundRequest,
    ResolveAbnormal,
    refund_report_mismatch,
)
from server.domain.refund import PlannedRefund, Refund, RefundStatus
from server.domain.validation import OUT_REFUND_NO, Violations
from server.service.audit import audit
from server.service.context import Caller
from server.service.errors import TransientError
from server.service.lookups import require_order
from server.service.payments import ApplyResult
from server.service.ports import (
    Gateways,
    MerchantIdentity,
    PaymentGateway,
    ReadFactory,
    UnitOfWork,
    UnitOfWorkFactory,
)
from server.service.retry import Conflict, retry_on_conflict

log = structlog.get_logger("orderpay.refunds")
# The caller submits right after recording; the refund job takes over if that never happens.
RETRY_SUBMIT_AFTER = timedelta(seconds=5)
REFUND_SETTLER = Caller("system:refund")


class RefundService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        gateway: PaymentGateway,
        merchant: MerchantIdentity,
        notify_url: str,
        poll_schedule_s: tuple[float, ...],
        read: ReadFactory | None = None,
        gateways: Gateways | None = None,
        notify_url_for: Callable[[str], str] | None = None,
    ) -> None:
        """`gateways` (issue 18): each refund goes out under its order's account, and reports are
        checked against that account; without, `gateway` and `merchant` serve every order."""
        self._uow = uow
        self._gateways = gateways
        self._notify_url_for = notify_url_for
        self._merchant = merchant
        self._read: ReadFactory = read or uow  # committed-data reads, outside the writers' queue
        self._clock = clock
        self._gateway = gateway
        self._notify_url = notify_url
        self._schedule = poll_schedule_s or (60.0,)

    # --- create -------------------------------------------------------------------------------
    def refund_order(
        self, order_id: str, out_refund_no: str, amount: int, reason: str, caller: Caller
    ) -> Refund:
        _validate(order_id, out_refund_no, amount, reason)
        request = PlannedRefund(out_refund_no, order_id, amount, reason)
        refund = retry_on_conflict(lambda: self._record(request, caller), "recording the refund")
        return refund if refund.submitted or refund.status.final else self._submit(refund)

    def _record(self, request: PlannedRefund, caller: Caller) -> Refund | None:
        with self._uow() as uow:
            existing = uow.refunds.get(request.out_refund_no)
            if existing is not None:
                if (existing.order_id, existing.amount) != (request.order_id, request.amount):
                    raise IdempotencyKeyReusedError(
                        "out_refund_no was already used for a different refund",
                        metadata={"order_id": existing.order_id},
                    )
                return existing
            order = require_order(uow, request.order_id)
            order.check_refund(request.amount, uow.refunds.committed_amount(order.order_id))
            now = self._clock()
            # Bumping the order's version serialises concurrent refunds of one order.
            if uow.orders.save(order, _touched(order, now)) is None:
                return None
            refund = request.new_refund(order.total_fee, now)
            uow.refunds.insert(refund, due_at=now + RETRY_SUBMIT_AFTER)
            uow.record(RefundRequested(refund.out_refund_no))
            cause = f"refund {yuan(request.amount)} requested"
            uow.audit.record(audit(order, "refund", None, request.out_refund_no, cause, caller), now)
            return refund

    def _submit(self, refund: Refund) -> Refund:
        """Send (or re-send: same out_refund_no, so WeChat refunds once) and record the answer."""
        with self._read() as uow:
            order = require_order(uow, refund.order_id)
        request = RefundRequest(
            out_trade_no=order.out_trade_no,
            out_refund_no=refund.out_refund_no,
            amount=refund.amount,
            order_total=refund.order_total,
            reason=refund.reason,
            notify_url=self._notify_url_for(order.account) if self._notify_url_for else self._notify_url,
        )
        try:
            report = self._gateway_of(order.account).refund(request)
        except ProviderUnavailableError:
            log.warning("refund.submit_deferred", out_refund_no=refund.out_refund_no)
            return self._move(refund.out_refund_no, lambda r, now: r.deferred(now + RETRY_SUBMIT_AFTER, now))
        except ProviderRejectedError as error:
            self._move(refund.out_refund_no, lambda r, now: r.rejected(now))
            code = error.metadata.get("provider_code")
            log.warning("refund.rejected", out_refund_no=refund.out_refund_no, code=code)
            raise
        first_poll = timedelta(seconds=self._schedule[0])
        updated = self._move(
            refund.out_refund_no, lambda r, now: r.submitted_as(report.refund_id, now + first_poll, now)
        )
        status = report.status or RefundStatus.PROCESSING
        if status is not RefundStatus.PROCESSING:
            return self._settle(refund.out_refund_no, status, report, source="refund-api").refund or updated
        return updated

    # --- settle -------------------------------------------------------------------------------
    def apply_refund(self, report: RefundReport, *, source: str) -> ApplyResult:
        return retry_on_conflict(lambda: self._apply_once(report, source), "settling the refund")

    def _apply_once(self, report: RefundReport, source: str) -> ApplyResult:
        with self._uow() as uow:
            return self.apply_in(uow, report, source=source)

    def apply_in(
        self, uow: UnitOfWork, report: RefundReport, *, source: str, account: str | None = None
    ) -> ApplyResult:
        """Settle inside the caller's transaction; raises `Conflict` when a row moved under us.
        `account`: the account a notification came in for; it must be the refund's order's."""
        if report.status is None or report.status is RefundStatus.PROCESSING:
            return ApplyResult(ApplyOutcome.NOT_SUCCESS)
        settled = self._settle_once(uow, report.out_refund_no, report.status, report, source, account)
        if settled is None:
            raise Conflict
        return ApplyResult(settled.outcome, settled.order)

    def _settle(
        self, out_refund_no: str, status: RefundStatus, report: RefundReport, *, source: str
    ) -> _Settled:
        def attempt() -> _Settled | None:
            with self._uow() as uow:
                return self._settle_once(uow, out_refund_no, status, report, source)

        return retry_on_conflict(attempt, "settling the refund")

    def _settle_once(
        self,
        uow: UnitOfWork,
        out_refund_no: str,
        status: RefundStatus,
        report: RefundReport,
        source: str,
        account: str | None = None,
    ) -> _Settled | None:
        refund = uow.refunds.get(out_refund_no)
        if refund is None:
            log.error("refund.unknown", out_refund_no=out_refund_no, source=source)
            return _Settled(ApplyOutcome.REFUND_UNKNOWN, None, None)
        order = require_order(uow, refund.order_id)
        now = self._clock()
        caller = Caller(f"system:{source}")
        merchant = self._merchant_of(order.account)
        problem = refund_report_mismatch(
            report,
            refund,
            order.out_trade_no,
            merchant.merchant_id,
            complete=source == NOTIFY_SOURCE,
            sub_merchant_id=merchant.sub_merchant_id,
        )
        if not problem and account is not None and account != order.account:
            problem = f"notified for account {account}, the order is {order.account}'s"
        if problem:
            # Recorded (the notification row keeps its outcome, the order its audit line), never credited.
            log.error("refund.report_mismatch", out_refund_no=out_refund_no, problem=problem, source=source)
            cause = f"refund report refused: {problem}"
            uow.audit.record(
                audit(order, "refund", refund.status, f"{out_refund_no}:HELD", cause, caller), now
            )
            return _Settled(ApplyOutcome.REFUND_MISMATCH, refund, order)
        transition = refund.settle(status, now, refund_id=report.refund_id, success_time=report.success_time)
        if not transition.changed:
            return _Settled(ApplyOutcome.DUPLICATE, refund, order)
        if order.status is OrderStatus.UNPAID:
            raise TransientError("refund settled before the payment was applied; retry later")
        settled = uow.refunds.save(refund, transition.refund)
        if settled is None:
            return None
        if status is not RefundStatus.PROCESSING:
            uow.record(RefundSettled(out_refund_no))
        if status is RefundStatus.SUCCESS:
            order = self._credit(uow, order, refund, now)
        uow.audit.record(
            audit(order, "refund", refund.status, f"{out_refund_no}:{status}", "refund settled", caller), now
        )
        if status is RefundStatus.ABNORMAL:
            log.error(
                "refund.abnormal",
                out_refund_no=out_refund_no,
                order_id=order.order_id,
                action="the payer's account refused the money: resolve it (ResolveAbnormalRefund)",
            )
        return _Settled(transition.outcome, settled, order)

    @staticmethod
    def _credit(uow: UnitOfWork, order: Order, refund: Refund, now: datetime) -> Order:
        transition = order.credit_refund(refund.amount, now)
        updated = uow.orders.save(order, transition.order)
        if updated is None:
            raise Conflict  # the order moved under us: the whole settlement rolls back
        if updated.status is not order.status:
            cause = f"refund {refund.out_refund_no} settled"
            uow.audit.record(audit(order, "status", order.status, updated.status, cause, REFUND_SETTLER), now)
        uow.record(*transition.events)
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
        report = self._gateway_of(self._account_of(refund)).query_refund(out_refund_no)
        status = report.status or RefundStatus.PROCESSING
        if status is not RefundStatus.PROCESSING:
            return self._settle(out_refund_no, status, report, source="poll").refund or refund
        delay = timedelta(seconds=self._schedule[min(refund.poll_attempts + 1, len(self._schedule) - 1)])
        now = self._clock()
        # Compare-and-set on the refund read before the call, once: a change committed meanwhile (an
        # operator stopping the polls, a notification, another poll) stands and is not overwritten.
        with self._uow() as uow:
            rescheduled = uow.refunds.save(refund, refund.polled(now + delay, now))
        return rescheduled or self.get_refund(out_refund_no, False, caller)

    # --- abnormal refunds -----------------------------------------------------------------------
    def resolve_abnormal(self, command: ResolveAbnormal, caller: Caller) -> Refund:
        """WeChat's follow-up for an ABNORMAL refund: re-route the money to the payer's card or to the
        merchant's bank account. The refund is PROCESSING again until WeChat settles it."""
        command.validate()
        refund = self.get_refund(command.out_refund_no, False, caller)
        if refund.status is not RefundStatus.ABNORMAL or not refund.refund_id:
            raise InvalidStateTransitionError(
                f"refund {refund.out_refund_no} is {refund.status}, not ABNORMAL at WeChat Pay",
                metadata={"status": str(refund.status)},
            )
        gateway = self._gateway_of(self._account_of(refund))
        report = gateway.apply_abnormal_refund(command.request(refund.refund_id))
        status = report.status or RefundStatus.PROCESSING
        if status is not RefundStatus.PROCESSING:  # settled at once (e.g. to the merchant's account)
            settled = self._reopen(refund.out_refund_no, command, caller)
            return (
                self._settle(refund.out_refund_no, status, report, source="abnormal-refund").refund or settled
            )
        return self._reopen(refund.out_refund_no, command, caller)

    def _gateway_of(self, account: str) -> PaymentGateway:
        return self._gateway if self._gateways is None else self._gateways.for_account(account)

    def _merchant_of(self, account: str) -> MerchantIdentity:
        return self._merchant if self._gateways is None else self._gateways.identity(account)

    def _account_of(self, refund: Refund) -> str:
        with self._read() as uow:
            return require_order(uow, refund.order_id).account

    def _reopen(self, out_refund_no: str, command: ResolveAbnormal, caller: Caller) -> Refund:
        def attempt() -> Refund | None:
            with self._uow() as uow:
                refund = uow.refunds.get(out_refund_no)
                if refund is None:
                    raise RefundNotFoundError(f"refund {out_refund_no!r} not found")
                if refund.status is not RefundStatus.ABNORMAL:
                    return refund  # another resolution (or WeChat's own notification) came first
                order = require_order(uow, refund.order_id)
                now = self._clock()
                reopened = uow.refunds.save(
                    refund, refund.reopened(now + timedelta(seconds=self._schedule[0]), now)
                )
                if reopened is not None:
                    cause = f"abnormal refund sent to {command.route}: {command.reason}"
                    after = f"{out_refund_no}:{RefundStatus.PROCESSING}"
                    uow.audit.record(audit(order, "refund", refund.status, after, cause, caller), now)
                return reopened

        return retry_on_conflict(attempt, "re-opening the abnormal refund")

    def _move(self, out_refund_no: str, transition: Callable[[Refund, datetime], Refund]) -> Refund:
        """Apply `transition` to the refund as it is now, by compare-and-set (again if it moved)."""

        def attempt() -> Refund | None:
            with self._uow() as uow:
                refund = uow.refunds.get(out_refund_no)
                if refund is None:
                    raise RefundNotFoundError(f"refund {out_refund_no!r} not found")
                return uow.refunds.save(refund, transition(refund, self._clock()))

        return retry_on_conflict(attempt, "updating the refund")


@dataclass(frozen=True)
class _Settled:
    outcome: ApplyOutcome
    refund: Refund | None
    order: Order | None


def _touched(order: Order, now: datetime) -> Order:
    return replace(order, updated_at=now)


def _validate(order_id: str, out_refund_no: str, amount: int, reason: str) -> None:
    v = Violations()
    v.identifier("order_id", order_id, max_len=40)
    v.pattern("out_refund_no", out_refund_no, OUT_REFUND_NO, "must be 1-64 characters of [0-9A-Za-z_-|*@]")
    v.int_range("amount", amount, 1, 10**12)
    v.text("reason", reason, 80)
    v.raise_if_any()
