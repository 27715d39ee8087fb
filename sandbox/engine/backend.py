"""The sandbox's state and its rules: trades, refunds, explicit transitions (moto's `models.py`).

No wire formats and no I/O here; routes parse and render, the simulator adds notifications and timers.
A lock makes each operation atomic, so the threaded runner, the loop and control calls never interleave.
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sandbox.api import errors
from sandbox.api.errors import ApiError
from sandbox.api.validation import PrepayRequest, RefundRequest
from sandbox.engine.models import Refund, Trade, new_prepay_id, new_refund_id, new_transaction_id

PREPAY_VALIDITY = timedelta(hours=2)
DEFAULT_PAY_WINDOW = timedelta(days=7)
MIN_PAY_WINDOW = timedelta(minutes=1)
MAX_PAY_WINDOW = timedelta(days=90)
MAX_REFUNDS_PER_ORDER = 50
Clock = Callable[[], datetime]


def clamp_time_expire(requested: datetime | None, now: datetime) -> datetime:
    """WeChat silently raises a too-early time_expire to now+1 min and caps it at now+90 days."""
    if requested is None:
        return now + DEFAULT_PAY_WINDOW
    return min(max(requested, now + MIN_PAY_WINDOW), now + MAX_PAY_WINDOW)


class Backend:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._trades: dict[str, Trade] = {}
        self._by_transaction: dict[str, str] = {}
        self._by_token: dict[str, str] = {}
        self._refunds: dict[str, Refund] = {}

    def reset(self) -> None:
        with self._lock:
            self._trades.clear()
            self._by_transaction.clear()
            self._by_token.clear()
            self._refunds.clear()

    # --- payments ---------------------------------------------------------------------------------

    def prepay(self, request: PrepayRequest) -> tuple[Trade, bool]:
        """Create the trade, or re-enter it under §3.2's rules. Returns (trade, created)."""
        with self._lock:
            now = self._clock()
            trade = self._trades.get(request.out_trade_no)
            if trade is None:
                return self._create_trade(request, now), True
            self._expire_if_due(trade, now)
            if trade.is_paid:
                raise errors.order_paid()
            if trade.trade_state == "CLOSED":
                raise errors.order_closed()
            if trade.request.fingerprint != request.fingerprint:
                raise errors.invalid_request("201 商户订单号重复")
            if now - trade.prepay_issued_at >= PREPAY_VALIDITY:
                trade.prepay_id, trade.prepay_issued_at = new_prepay_id(now), now
            return trade, False

    def _create_trade(self, request: PrepayRequest, now: datetime) -> Trade:
        trade = Trade(
            request=request,
            created_at=now,
            expires_at=clamp_time_expire(request.time_expire, now),
            prepay_id=new_prepay_id(now),
            prepay_issued_at=now,
            cashier_token=secrets.token_urlsafe(12),
        )
        self._trades[request.out_trade_no] = trade
        self._by_token[trade.cashier_token] = request.out_trade_no
        return trade

    def _expire_if_due(self, trade: Trade, now: datetime) -> None:
        # WeChat closes an unpaid order once its pay window is over.
        if trade.trade_state == "NOTPAY" and now >= trade.expires_at:
            trade.trade_state, trade.closed_at = "CLOSED", trade.expires_at

    def trade(self, out_trade_no: str) -> Trade:
        with self._lock:
            trade = self._trades.get(out_trade_no)
            if trade is None:
                raise errors.order_not_exist()
            self._expire_if_due(trade, self._clock())
            return trade

    def recent_trades(self, limit: int) -> list[Trade]:
        """The newest `limit` trades, newest first (for the index page)."""
        with self._lock:
            newest = list(self._trades.values())[-limit:][::-1]
            now = self._clock()
            for trade in newest:
                self._expire_if_due(trade, now)
            return newest

    def trade_by_transaction_id(self, transaction_id: str) -> Trade:
        with self._lock:
            out_trade_no = self._by_transaction.get(transaction_id)
            if out_trade_no is None:
                raise errors.order_not_exist()
            return self._trades[out_trade_no]

    def has_trade(self, out_trade_no: str) -> bool:
        with self._lock:
            return out_trade_no in self._trades

    def has_refund(self, out_refund_no: str) -> bool:
        with self._lock:
            return out_refund_no in self._refunds

    def has_token(self, token: str) -> bool:
        with self._lock:
            return token in self._by_token

    def trade_by_token(self, token: str) -> Trade:
        with self._lock:
            out_trade_no = self._by_token.get(token)
            if out_trade_no is None:
                raise errors.order_not_exist()
            return self.trade(out_trade_no)

    def close(self, out_trade_no: str) -> Trade:
        with self._lock:
            trade = self.trade(out_trade_no)
            if trade.is_paid:
                raise errors.order_paid()
            if trade.trade_state != "CLOSED":  # closing again is allowed and changes nothing
                trade.trade_state, trade.closed_at = "CLOSED", self._clock()
            return trade

    def pay(self, out_trade_no: str, payer_openid: str | None = None) -> tuple[Trade, bool]:
        """NOTPAY → SUCCESS. Returns (trade, newly_paid); paying a paid trade again is a no-op."""
        with self._lock:
            trade = self.trade(out_trade_no)
            if trade.is_paid:
                return trade, False
            if trade.trade_state == "CLOSED":
                raise errors.order_closed()
            now = self._clock()
            trade.trade_state, trade.success_time = "SUCCESS", now
            trade.transaction_id = new_transaction_id(now)
            trade.payer_openid = payer_openid or trade.request.payer_openid
            self._by_transaction[trade.transaction_id] = out_trade_no
            return trade, True

    # --- refunds ----------------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> tuple[Refund, bool]:
        """Create a refund (PROCESSING). Returns (refund, created); a known out_refund_no returns as is."""
        with self._lock:
            existing = self._refunds.get(request.out_refund_no)
            if existing is not None:
                return existing, False
            trade = self._refundable_trade(request)
            self._check_refund_amount(trade, request)
            refund = self._new_refund(trade, request)
            self._refunds[refund.out_refund_no] = refund
            trade.refund_nos.append(refund.out_refund_no)
            trade.trade_state = "REFUND"
            return refund, True

    def _refundable_trade(self, request: RefundRequest) -> Trade:
        try:
            if request.out_trade_no:
                trade = self.trade(request.out_trade_no)
            else:
                trade = self.trade_by_transaction_id(request.transaction_id or "")
        except ApiError:
            raise errors.resource_not_exists("订单不存在") from None
        if not trade.is_paid:
            raise errors.resource_not_exists("订单不存在")
        if request.transaction_id and request.transaction_id != trade.transaction_id:
            raise errors.invalid_request("transaction_id 与 out_trade_no 不匹配")
        return trade

    def _check_refund_amount(self, trade: Trade, request: RefundRequest) -> None:
        if request.total != trade.total:
            raise errors.invalid_request("订单金额与原订单金额不一致")
        if len(trade.refund_nos) >= MAX_REFUNDS_PER_ORDER:
            raise errors.invalid_request("订单退款次数超过50次限制")
        if request.refund > self.refundable(trade):
            raise errors.invalid_request("申请退款金额超过订单可退金额")

    def refundable(self, trade: Trade) -> int:
        held = sum(
            self._refunds[no].refund
            for no in trade.refund_nos
            # ABNORMAL money left the merchant and awaits re-routing: it is not refundable twice.
            if self._refunds[no].status in {"PROCESSING", "SUCCESS", "ABNORMAL"}
        )
        return trade.total - held

    def _new_refund(self, trade: Trade, request: RefundRequest) -> Refund:
        now = self._clock()
        return Refund(
            out_refund_no=request.out_refund_no,
            refund_id=new_refund_id(now),
            out_trade_no=trade.out_trade_no,
            transaction_id=trade.transaction_id or "",
            refund=request.refund,
            total=trade.total,
            currency=request.currency,
            reason=request.reason,
            notify_url=request.notify_url,
            funds_account=request.funds_account or "AVAILABLE",
            create_time=now,
        )

    def get_refund(self, out_refund_no: str) -> Refund:
        with self._lock:
            refund = self._refunds.get(out_refund_no)
            if refund is None:
                raise errors.resource_not_exists("退款单不存在")
            return refund

    def reroute_abnormal(self, refund_id: str, out_refund_no: str) -> Refund:
        """apply-abnormal-refund: an ABNORMAL refund is PROCESSING again, towards its new account."""
        with self._lock:
            refund = next((r for r in self._refunds.values() if r.refund_id == refund_id), None)
            if refund is None:
                raise errors.resource_not_exists("退款单不存在")
            if refund.out_refund_no != out_refund_no:
                raise errors.invalid_request("out_refund_no 与 refund_id 不匹配")
            if refund.status != "ABNORMAL":
                raise errors.invalid_request("退款单状态不是退款异常，无法发起异常退款")
            refund.status = "PROCESSING"
            return refund

    def settle_refund(self, out_refund_no: str, status: str) -> tuple[Refund, bool]:
        """PROCESSING → SUCCESS | ABNORMAL | CLOSED. Returns (refund, changed)."""
        with self._lock:
            refund = self.get_refund(out_refund_no)
            if refund.status != "PROCESSING":
                return refund, False
            refund.status = status
            if status == "SUCCESS":
                refund.success_time = self._clock()
            return refund, True

    # --- inspection -------------------------------------------------------------------------------

    def snapshot(self) -> tuple[list[Trade], list[Refund]]:
        """Copies of every trade and refund, taken atomically (the bills are rendered from these)."""
        with self._lock:
            trades = [copy.copy(t) for t in self._trades.values()]
            return trades, [copy.copy(r) for r in self._refunds.values()]

    def dump(self) -> dict[str, Any]:
        with self._lock:
            return {
                "trades": [self._trade_state(t) for t in self._trades.values()],
                "refunds": [r.to_wire() for r in self._refunds.values()],
            }

    def _trade_state(self, trade: Trade) -> dict[str, Any]:
        return {
            **trade.to_wire(),
            "channel": trade.request.channel.upper(),
            "description": trade.request.description,
            "notify_url": trade.request.notify_url,
            "prepay_id": trade.prepay_id,
            "cashier_token": trade.cashier_token,
            "time_expire": trade.expires_at.isoformat(),
            "refunds": list(trade.refund_nos),
        }

    def describe(self, out_trade_no: str) -> dict[str, Any]:
        with self._lock:
            return self._trade_state(self.trade(out_trade_no))
