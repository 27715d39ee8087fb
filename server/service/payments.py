"""Payment use cases: prepay, applying WeChat's word (notification, query), sync, close at WeChat."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from server.domain.clock import Clock
from server.domain.errors import (
    FieldViolation,
    InvalidArgumentError,
    InvalidStateTransitionError,
    OrderNotPayableError,
)
from server.domain.order import Fulfilment, Order, OrderStatus
from server.domain.outcomes import ApplyOutcome
from server.domain.provider import CloseOutcome, PrepayRequest, TransactionReport
from server.domain.validation import Violations
from server.service.audit import audit
from server.service.context import Caller
from server.service.lookups import require_order
from server.service.ports import MerchantIdentity, PaymentGateway, UnitOfWork, UnitOfWorkFactory
from server.service.retry import Conflict, retry_on_conflict

log = structlog.get_logger("orderpay.payments")

# Channels that share one prepay (a mini-program pays like JSAPI): the same family reuses it.
CHANNEL_ENDPOINT = {"JSAPI": "jsapi", "MINIPROGRAM": "jsapi", "APP": "app", "NATIVE": "native", "H5": "h5"}
PREPAY_VALIDITY = {"h5": timedelta(minutes=5)}  # everything else: 2 h (research §3.3)
DEFAULT_PREPAY_VALIDITY = timedelta(hours=2)


@dataclass(frozen=True)
class PaymentView:
    order: Order
    channel: str
    prepay_id: str
    prepay_expires_at: datetime
    params: dict[str, str]  # JSAPI / APP pay parameters, signed
    code_url: str = ""
    h5_url: str = ""


@dataclass(frozen=True)
class ApplyResult:
    outcome: ApplyOutcome
    order: Order | None = None


class PaymentService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        gateway: PaymentGateway,
        merchant: MerchantIdentity,
        notify_url: str,
        reconcile_schedule_s: tuple[float, ...],
        read: UnitOfWorkFactory | None = None,
    ) -> None:
        self._uow = uow
        self._read = read or uow  # committed-data reads, outside the writers' queue
        self._clock = clock
        self._gateway = gateway
        self._merchant = merchant
        self._notify_url = notify_url
        self._schedule = reconcile_schedule_s or (60.0,)

    # --- prepay -------------------------------------------------------------------------------
    def create_payment(
        self, order_id: str, channel: str, payer_openid: str | None, client_ip: str | None, caller: Caller
    ) -> PaymentView:
        endpoint = _validate_payment(order_id, channel, payer_openid, client_ip)
        order = self._load(order_id)
        now = self._clock()
        reusable = self._reusable_prepay(order, endpoint, now)
        if reusable is not None:
            return reusable
        _check_payable(order, endpoint, now)
        prepay = self._gateway.prepay(
            PrepayRequest(
                channel=channel,
                out_trade_no=order.out_trade_no,
                description=order.description,
                attach=order.attach,
                total_fee=order.total_fee,
                expires_at=order.expires_at,
                notify_url=self._notify_url,
                payer_openid=payer_openid,
                client_ip=client_ip,
            )
        )
        prepay_id, payload = prepay.prepay_id, prepay.payload
        order = retry_on_conflict(
            lambda: self._record_prepay(order_id, channel, endpoint, prepay_id, payload, now, caller),
            "recording the prepay",
        )
        return self._view(order, channel, endpoint, prepay_id, payload, now)

    def _reusable_prepay(self, order: Order, endpoint: str, now: datetime) -> PaymentView | None:
        if not order.prepay_id or order.prepay_at is None or order.status is not OrderStatus.UNPAID:
            return None
        if CHANNEL_ENDPOINT.get(order.pay_channel or "") != endpoint:
            return None
        validity = PREPAY_VALIDITY.get(endpoint, DEFAULT_PREPAY_VALIDITY)
        if order.prepay_at + validity <= now + timedelta(minutes=1):
            return None  # expired or about to: ask WeChat again with the same parameters
        channel = order.pay_channel or ""
        return self._view(
            order, channel, endpoint, order.prepay_id, order.prepay_payload or "", order.prepay_at
        )

    def _record_prepay(
        self,
        order_id: str,
        channel: str,
        endpoint: str,
        prepay_id: str,
        payload: str,
        now: datetime,
        caller: Caller,
    ) -> Order | None:
        with self._uow() as uow:
            order = require_order(uow, order_id)
            updated = uow.orders.save(
                order,
                replace(
                    order,
                    pay_channel=channel,
                    prepay_id=prepay_id,
                    prepay_payload=payload,
                    prepay_at=now,
                    updated_at=now,
                    next_sync_at=now + timedelta(seconds=self._schedule[0]),
                    sync_attempts=0,
                ),
            )
            if updated is not None:
                uow.audit.record(audit(order, "prepay", None, endpoint, "prepay created", caller), now)
            return updated

    def _view(
        self, order: Order, channel: str, endpoint: str, prepay_id: str, payload: str, prepay_at: datetime
    ) -> PaymentView:
        expires = prepay_at + PREPAY_VALIDITY.get(endpoint, DEFAULT_PREPAY_VALIDITY)
        params: dict[str, str] = {}
        if endpoint == "jsapi":
            params = self._gateway.jsapi_pay_params(prepay_id)
        elif endpoint == "app":
            params = self._gateway.app_pay_params(prepay_id)
        return PaymentView(
            order=order,
            channel=channel,
            prepay_id=prepay_id,
            prepay_expires_at=expires,
            params=params,
            code_url=payload if endpoint == "native" else "",
            h5_url=payload if endpoint == "h5" else "",
        )

    # --- applying the provider's word ---------------------------------------------------------
    def apply_transaction(self, report: TransactionReport, *, source: str) -> ApplyResult:
        """Idempotent: queries and the reconciler come through here (notifications: `apply_in`)."""
        return retry_on_conflict(lambda: self._apply_once(report, source), "applying the payment")

    def _apply_once(self, report: TransactionReport, source: str) -> ApplyResult:
        with self._uow() as uow:  # the unit of work runs the events' reactions
            return self.apply_in(uow, report, source=source)

    def apply_in(self, uow: UnitOfWork, report: TransactionReport, *, source: str) -> ApplyResult:
        """Apply inside the caller's transaction; raises `Conflict` when the order moved under us."""
        merchant = self._merchant
        # Both are in every transaction WeChat reports; one left out is a mismatch, never "ours".
        if report.merchant_id != merchant.merchant_id or report.app_id != merchant.app_id:
            log.error("payment.identity_mismatch", source=source, out_trade_no=report.out_trade_no)
            return ApplyResult(ApplyOutcome.IDENTITY_MISMATCH)
        if report.problem:
            raise InvalidArgumentError([FieldViolation("resource", f"not a transaction: {report.problem}")])
        if report.payment is None:
            return ApplyResult(ApplyOutcome.NOT_SUCCESS)
        paid = report.payment
        order = uow.orders.get_by_out_trade_no(paid.out_trade_no)
        if order is None:
            log.error("payment.unknown_order", source=source, out_trade_no=paid.out_trade_no)
            return ApplyResult(ApplyOutcome.UNKNOWN_ORDER)
        now = self._clock()
        transition = order.apply_payment(paid, now)
        if not transition.changed:
            return ApplyResult(transition.outcome, order)
        updated = uow.orders.save(order, transition.order)
        if updated is None:
            raise Conflict
        caller = Caller(f"system:{source}")
        # A payment on a CLOSED order changes no status; its record is the transaction itself.
        field, before, after = (
            ("status", order.status, updated.status)
            if updated.status is not order.status
            else ("payment", None, paid.transaction_id)
        )
        outcome = transition.outcome
        uow.audit.record(audit(order, field, before, after, f"payment {outcome}", caller), now)
        if updated.fulfilment is Fulfilment.HELD:
            reason = outcome.value.upper()
            uow.audit.record(
                audit(order, "fulfilment", order.fulfilment, Fulfilment.HELD, reason, caller), now
            )
        uow.record(*transition.events)
        return ApplyResult(outcome, updated)

    # --- active sync and close ----------------------------------------------------------------
    def sync_payment(self, order_id: str, caller: Caller) -> Order:
        """Ask the provider, and repair local state (uni-pay's getOrder only reports)."""
        order = self._load(order_id)
        if order.status is not OrderStatus.UNPAID and order.transaction_id:
            return order
        report = self._gateway.query_transaction(order.out_trade_no)
        if report is None:
            return order  # the provider never saw a prepay for it
        if report.payment is not None:
            self.apply_transaction(report, source="sync")
        log.info("payment.synced", order_id=order_id, state=report.state, actor=caller.actor)
        return self._load(order_id)

    def schedule_next_sync(self, order_id: str) -> None:
        """Back off the reconciler along the schedule (e.g. 1, 5, 15, 60 min); stop when exhausted."""
        with self._uow() as uow:
            order = uow.orders.get(order_id)
            if order is None or order.status is not OrderStatus.UNPAID:
                return
            attempts = order.sync_attempts + 1
            delay = self._schedule[attempts] if attempts < len(self._schedule) else None
            next_at = None if delay is None else self._clock() + timedelta(seconds=delay)
            uow.orders.save(order, replace(order, next_sync_at=next_at, sync_attempts=attempts))

    def close_at_provider(self, order: Order, caller: Caller) -> None:
        """The prepay closer: the provider first. If it already took the money, apply PAID instead."""
        if self._gateway.close(order.out_trade_no) is not CloseOutcome.ALREADY_PAID:
            return  # closed now, closed before, or never seen there
        paid = self.sync_payment(order.order_id, caller)
        raise InvalidStateTransitionError(
            "WeChat Pay already took the payment; the order is now PAID",
            metadata={"from": paid.status.value, "to": OrderStatus.CLOSED.value},
        )

    def _load(self, order_id: str) -> Order:
        with self._read() as uow:
            return require_order(uow, order_id)


def _validate_payment(order_id: str, channel: str, openid: str | None, client_ip: str | None) -> str:
    v = Violations()
    v.identifier("order_id", order_id, max_len=40)
    endpoint = CHANNEL_ENDPOINT.get(channel)
    if endpoint is None:
        v.add("channel", "must be one of JSAPI, MINIPROGRAM, APP, NATIVE, H5")
    if endpoint == "jsapi":
        v.identifier("payer_openid", openid or "", max_len=128)
    if endpoint == "h5":
        v.identifier("client_ip", client_ip or "", max_len=45)
    v.raise_if_any()
    return endpoint or ""


def _check_payable(order: Order, endpoint: str, now: datetime) -> None:
    if order.status is not OrderStatus.UNPAID:
        raise OrderNotPayableError(f"order is {order.status}", metadata={"status": order.status.value})
    if order.expires_at <= now + timedelta(minutes=1):
        raise OrderNotPayableError("order has expired", metadata={"expires_at": order.expires_at.isoformat()})
    previous = CHANNEL_ENDPOINT.get(order.pay_channel or "")
    if previous is not None and previous != endpoint:
        raise OrderNotPayableError(
            "order already has a prepay on another channel; create a new order to switch",
            metadata={"channel": order.pay_channel or ""},
        )
