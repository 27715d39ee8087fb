"""What happens around the state changes: notifications after a payment or refund settles, the
auto-pay and refund-settle timers. Routes, the control API and the cashier page all come through here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from sandbox.api.errors import ApiError
from sandbox.api.validation import RefundRequest
from sandbox.config import SandboxConfig
from sandbox.engine.backend import Backend
from sandbox.engine.faults import Settings
from sandbox.engine.models import REFUND_SUMMARY, Refund, Trade
from sandbox.engine.notifier import Dispatch, Notifier


class Simulator:
    def __init__(self, backend: Backend, notifier: Notifier, settings: Settings) -> None:
        self.backend = backend
        self.notifier = notifier
        self.settings = settings
        self._timers: set[asyncio.Task[Any]] = set()

    @property
    def config(self) -> SandboxConfig:
        return self.settings.config

    async def stop(self) -> None:
        timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)

    def _later(self, delay_s: float, action: Callable[[], object]) -> None:
        async def run() -> None:
            await asyncio.sleep(delay_s)
            with contextlib.suppress(ApiError):  # the state moved on meanwhile (closed, reset)
                action()

        task = asyncio.get_running_loop().create_task(run())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    # --- payments ---------------------------------------------------------------------------------

    def after_prepay(self, trade: Trade, *, created: bool) -> None:
        delay = self.config.auto_pay_delay_s
        if created and delay is not None:
            self._later(delay, lambda: self._auto_pay(trade.out_trade_no))

    def _auto_pay(self, out_trade_no: str) -> None:
        if self.backend.trade(out_trade_no).trade_state == "NOTPAY":
            self.pay(out_trade_no)

    def pay(self, out_trade_no: str, payer_openid: str | None = None) -> tuple[Trade, Dispatch | None]:
        """Pay the order (NOTPAY → SUCCESS) and send TRANSACTION.SUCCESS; paying again sends nothing."""
        trade, newly_paid = self.backend.pay(out_trade_no, payer_openid)
        if not newly_paid:
            return trade, None
        return trade, self.notifier.submit(self._payment_notification(trade))

    def _payment_notification(self, trade: Trade) -> Any:
        resource = trade.to_wire()
        resource["trade_state"], resource["trade_state_desc"] = "SUCCESS", "支付成功"
        # A field WeChat added in 2025-10 (分期/贴息): a strict client must ignore what it does not know.
        resource["installment_info"] = {"use_subsidy": False, "selected_installment_number": 0}
        delta = self.settings.faults_for(trade.out_trade_no).wrong_amount_delta
        if delta:
            resource["amount"]["total"] += delta
            resource["amount"]["payer_total"] += delta
        return self.notifier.build(
            event_type="TRANSACTION.SUCCESS",
            summary="支付成功",
            resource=resource,
            url=trade.request.notify_url,
            out_trade_no=trade.out_trade_no,
        )

    # --- refunds ----------------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> Refund:
        refund, created = self.backend.refund(request)
        delay = self.config.refund_settle_delay_s
        if created and delay is not None:
            status = self.config.refund_settle_status
            self._later(delay, lambda: self.settle_refund(refund.out_refund_no, status))
        return refund

    def reroute_abnormal(self, refund_id: str, out_refund_no: str) -> Refund:
        refund = self.backend.reroute_abnormal(refund_id, out_refund_no)
        delay = self.config.refund_settle_delay_s
        if delay is not None:  # the new account takes the money (a second ABNORMAL is not emulated)
            self._later(delay, lambda: self.settle_refund(refund.out_refund_no, "SUCCESS"))
        return refund

    def settle_refund(self, out_refund_no: str, status: str) -> Refund:
        refund, changed = self.backend.settle_refund(out_refund_no, status)
        if changed:
            self.notifier.submit(self._refund_notification(refund))
        return refund

    def _refund_notification(self, refund: Refund) -> Any:
        trade = self.backend.trade(refund.out_trade_no)
        return self.notifier.build(
            event_type=f"REFUND.{refund.status}",
            summary=REFUND_SUMMARY[refund.status],
            resource=refund.to_notification(trade.request.mchid, trade.request.sub_mchid),
            url=refund.notify_url or trade.request.notify_url,
            out_trade_no=refund.out_trade_no,
            out_refund_no=refund.out_refund_no,
        )

    async def reset(self) -> None:
        await self.stop()
        await self.notifier.reset()
        self.backend.reset()
        self.settings.reset()
