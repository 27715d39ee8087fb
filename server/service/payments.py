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
from server.domain.provider import (
    PAY_CHANNELS,
    ChannelRules,
    CloseOutcome,
    PayView,
    Prepay,
    PrepayRequest,
    TransactionReport,
)
from server.domain.validation import Violations
from server.service.audit import audit
from server.service.context import Caller
from server.service.lookups import require_order
from server.service.ports import (
    Gateways,
    MerchantIdentity,
    PaymentGateway,
    ReadFactory,
    UnitOfWork,
    UnitOfWorkFactory,
)
from server.service.retry import Conflict, retry_on_conflict

log = structlog.get_logger("orderpay.payments")

REUSE_MARGIN = timedelta(minutes=1)  # a prepay this close to its end is asked for again


@dataclass(frozen=True)
class PaymentView:
    order: Order
    channel: str
    pay: PayView  # how the client pays, and until when


@dataclass(frozen=True)
class ApplyResult:
    outcome: ApplyOutcome
    order: Order | None = None


class PaymentService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        gateways: Gateways,
        merchant: MerchantIdentity,
        notify_url: str,
        reconcile_schedule_s: tuple[float, ...],
        read: ReadFactory | None = None,
        notify_per_account: bool = False,
    ) -> None:
        """`merchant`: the default account's. `notify_per_account`: each account has its own notify URL,
        `notify_url/<account>` (issue 18), so a notification is verified with that account's keys."""
        self._uow = uow
        self._notify_per_account = notify_per_account
        self._read: ReadFactory = read or uow  # committed-data reads, outside the writers' queue
        self._clock = clock
        self._gateways = gateways
        self._merchant = merchant  # the default account's; every order is checked against its own
        self._notify_url = notify_url
        self._schedule = reconcile_schedule_s or (60.0,)

    # --- prepay -------------------------------------------------------------------------------
    def create_payment(
        self, order_id: str, channel: str, payer_openid: str | None, client_ip: str | None, caller: Caller
    ) -> PaymentView:
        # Checked before the order is read (a bad request is INVALID_ARGUMENT even for an unknown order);
        # then against the order's own account, whose apps decide which channels it can pay on.
        _validate_payment(
            self._gateways.gateway_for(self._merchant), order_id, channel, payer_openid, client_ip
        )
        order = self._load(order_id)
        gateway = self._gateway_of(order)
        rules = gateway.channel(channel)
        if rules is None:
            problem = f"account {order.account} has no app for channel {channel}"
            raise InvalidArgumentError([FieldViolation("channel", problem)])
        now = self._clock()
        reusable = self._reusable_prepay(gateway, order, rules, now)
        if reusable is not None:
            return reusable
        _check_payable(gateway, order, rules, now)
        prepay = gateway.prepay(
            PrepayRequest(
                channel=channel,
                out_trade_no=order.out_trade_no,
                description=order.description,
                attach=order.attach,
                total_fee=order.total_fee,
                expires_at=order.expires_at,
                notify_url=self.notify_url_for(order.account),
                payer_openid=payer_openid,
                client_ip=client_ip,
            )
        )
        recorded = retry_on_conflict(
            lambda: self._record_prepay(order_id, channel, rules.family, prepay, now, caller),
            "recording the prepay",
        )
        return PaymentView(recorded, channel, gateway.pay_view(channel, prepay, now))

    def _reusable_prepay(
        self, gateway: PaymentGateway, order: Order, rules: ChannelRules, now: datetime
    ) -> PaymentView | None:
        if not order.prepay_id or order.prepay_at is None or order.status is not OrderStatus.UNPAID:
            return None
        channel = order.pay_channel or ""
        previous = gateway.channel(channel)
        if previous is None or previous.family != rules.family:
            return None
        prepay = Prepay(order.prepay_id, order.prepay_payload or "")
        view = gateway.pay_view(channel, prepay, order.prepay_at)
        if view.expires_at <= now + REUSE_MARGIN:
            return None  # expired or about to: ask the provider again with the same parameters
        return PaymentView(order, channel, view)

    def _record_prepay(
        self,
        order_id: str,
        channel: str,
        family: str,
        prepay: Prepay,
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
                    prepay_id=prepay.prepay_id,
                    prepay_payload=prepay.payload,
                    prepay_at=now,
                    updated_at=now,
                    next_sync_at=now + timedelta(seconds=self._schedule[0]),
                    sync_attempts=0,
                ),
            )
            if updated is not None:
                uow.audit.record(audit(order, "prepay", None, family, "prepay created", caller), now)
            return updated

    # --- applying the provider's word ---------------------------------------------------------
    def apply_transaction(self, report: TransactionReport, *, source: str) -> ApplyResult:
        """Idempotent: queries and the reconciler come through here (notifications: `apply_in`)."""
        return retry_on_conflict(lambda: self._apply_once(report, source), "applying the payment")

    def _apply_once(self, report: TransactionReport, source: str) -> ApplyResult:
        with self._uow() as uow:  # the unit of work runs the events' reactions
            return self.apply_in(uow, report, source=source)

    def apply_in(
        self, uow: UnitOfWork, report: TransactionReport, *, source: str, account: str | None = None
    ) -> ApplyResult:
        """Apply inside the caller's transaction; raises `Conflict` when the order moved under us.
        `account`: the account a notification came in for (its URL); it must be the order's."""
        stored = uow.orders.get_by_out_trade_no(report.out_trade_no) if report.out_trade_no else None
        merchant = self._gateways.identity(stored.account) if stored is not None else self._merchant
        # mchid and appid are in every transaction WeChat reports (partner: sp_mchid, sp_appid and
        # sub_mchid); one left out is a mismatch, never "ours". The order's account decides whose.
        mismatch = not merchant.accepts(report.merchant_id, report.app_id, report.sub_merchant_id)
        if mismatch or (account is not None and account != merchant.account):
            log.error(
                "payment.identity_mismatch", source=source, out_trade_no=report.out_trade_no, account=account
            )
            return ApplyResult(ApplyOutcome.IDENTITY_MISMATCH)
        if report.problem:
            raise InvalidArgumentError([FieldViolation("resource", f"not a transaction: {report.problem}")])
        if report.payment is None:
            return ApplyResult(ApplyOutcome.NOT_SUCCESS)
        paid = report.payment
        same = stored is not None and stored.out_trade_no == paid.out_trade_no
        order = stored if same else uow.orders.get_by_out_trade_no(paid.out_trade_no)
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
        report = self._gateway_of(order).query_transaction(order.out_trade_no)
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
        if self._gateway_of(order).close(order.out_trade_no) is not CloseOutcome.ALREADY_PAID:
            return  # closed now, closed before, or never seen there
        paid = self.sync_payment(order.order_id, caller)
        raise InvalidStateTransitionError(
            "WeChat Pay already took the payment; the order is now PAID",
            metadata={"from": paid.status.value, "to": OrderStatus.CLOSED.value},
        )

    def _gateway_of(self, order: Order) -> PaymentGateway:
        """The gateway of the account stored on the order: every call about it goes out under that one."""
        return self._gateways.for_account(order.account)

    def notify_url_for(self, account: str) -> str:
        return f"{self._notify_url.rstrip('/')}/{account}" if self._notify_per_account else self._notify_url

    def _load(self, order_id: str) -> Order:
        with self._read() as uow:
            return require_order(uow, order_id)


def _validate_payment(
    gateway: PaymentGateway, order_id: str, channel: str, openid: str | None, client_ip: str | None
) -> ChannelRules:
    v = Violations()
    v.identifier("order_id", order_id, max_len=40)
    rules = gateway.channel(channel)
    if rules is None:
        v.add("channel", f"must be one of {', '.join(PAY_CHANNELS)}")
        raise InvalidArgumentError(v.items)
    if rules.needs_payer:
        v.identifier("payer_openid", openid or "", max_len=128)
    if rules.needs_client_ip:
        v.identifier("client_ip", client_ip or "", max_len=45)
    v.raise_if_any()
    return rules


def _check_payable(gateway: PaymentGateway, order: Order, rules: ChannelRules, now: datetime) -> None:
    if order.status is not OrderStatus.UNPAID:
        raise OrderNotPayableError(f"order is {order.status}", metadata={"status": order.status.value})
    if order.expires_at <= now + timedelta(minutes=1):
        raise OrderNotPayableError("order has expired", metadata={"expires_at": order.expires_at.isoformat()})
    previous = gateway.channel(order.pay_channel or "")
    if previous is not None and previous.family != rules.family:
        raise OrderNotPayableError(
            "order already has a prepay on another channel; create a new order to switch",
            metadata={"channel": order.pay_channel or ""},
        )
