"""A fake WeChat Pay APIv3 client for service tests: scripted answers, and a record of every call.

It speaks WeChat's wire format; wrap it in server.wxpay.gateway.WeChatPayGateway (as bootstrap wraps the
real client) so the service tests exercise the real translation too.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from server.domain.errors import ProviderRejectedError, ProviderUnavailableError
from server.domain.provider import MerchantIdentity
from server.service.ports import PaymentGateway
from server.wxpay.gateway import WeChatPayGateway


class FakeGateway:
    def __init__(self, mchid: str = "1900000109", appid: str = "wxapp") -> None:
        self.mchid, self.appid = mchid, appid
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.trades: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.fail_next: list[Exception] = []
        self._lock = threading.Lock()

    def _record(self, name: str, payload: Mapping[str, Any]) -> None:
        with self._lock:
            self.calls.append((name, dict(payload)))
            if self.fail_next:
                raise self.fail_next.pop(0)

    def count(self, name: str) -> int:
        return sum(1 for call, _ in self.calls if call == name)

    # --- the raw operations (server.wxpay.gateway.WeChatPayOperations) ----------------------------
    def prepay(self, channel: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._record("prepay", {"channel": channel, **body})
        no = str(body["out_trade_no"])
        self.trades.setdefault(
            no, {"out_trade_no": no, "trade_state": "NOTPAY", "amount": dict(body["amount"])}
        )
        prepay_id = f"wx{no}"
        if channel == "native":
            return {"code_url": f"weixin://wxpay/bizpayurl?pr={no}"}
        if channel == "h5":
            return {"h5_url": f"https://wx.example/checkmweb?prepay_id={prepay_id}"}
        return {"prepay_id": prepay_id}

    def query_by_out_trade_no(self, out_trade_no: str) -> dict[str, Any]:
        self._record("query", {"out_trade_no": out_trade_no})
        if out_trade_no not in self.trades:
            raise ProviderRejectedError("not found", metadata={"provider_code": "ORDER_NOT_EXIST"})
        return dict(self.trades[out_trade_no])

    def close(self, out_trade_no: str) -> None:
        self._record("close", {"out_trade_no": out_trade_no})
        trade = self.trades.get(out_trade_no)
        if trade is not None and trade["trade_state"] == "SUCCESS":
            raise ProviderRejectedError("paid", metadata={"provider_code": "ORDERPAID"})
        if trade is not None:
            trade["trade_state"] = "CLOSED"

    def refund(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._record("refund", body)
        no = str(body["out_refund_no"])
        self.refunds.setdefault(
            no, {"out_refund_no": no, "refund_id": f"50{no}"[:64], "status": "PROCESSING"}
        )
        return dict(self.refunds[no])

    def query_refund(self, out_refund_no: str) -> dict[str, Any]:
        self._record("query_refund", {"out_refund_no": out_refund_no})
        return dict(self.refunds[out_refund_no])

    def apply_abnormal_refund(self, refund_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._record("apply_abnormal_refund", body)
        refund = next(r for r in self.refunds.values() if r["refund_id"] == refund_id)
        if refund["status"] != "ABNORMAL":
            raise ProviderRejectedError("not abnormal", metadata={"provider_code": "INVALID_REQUEST"})
        refund["status"] = "PROCESSING"
        return dict(refund)

    def encrypt_sensitive(self, plaintext: str) -> str:
        return f"enc({plaintext})"  # the real client seals it with WeChat Pay's key (RSA-OAEP)

    def jsapi_pay_params(self, prepay_id: str, appid: str | None = None) -> dict[str, str]:
        return {
            "app_id": appid or "wxapp",
            "time_stamp": "1",
            "nonce_str": "n",
            "package": f"prepay_id={prepay_id}",
            "sign_type": "RSA",
            "pay_sign": "sig",
        }

    def app_pay_params(
        self, prepay_id: str, appid: str | None = None, partner_id: str | None = None
    ) -> dict[str, str]:
        return {
            "app_id": appid or "wxapp",
            "partner_id": partner_id or "mch",
            "prepay_id": prepay_id,
            "package": "Sign=WXPay",
            "nonce_str": "n",
            "time_stamp": "1",
            "sign": "sig",
        }

    def shutdown(self) -> None:
        pass

    # --- what WeChat would do -------------------------------------------------------------------
    def pay(self, out_trade_no: str, total: int | None = None) -> dict[str, Any]:
        trade = self.trades[out_trade_no]
        trade.update(
            mchid=self.mchid,
            appid=self.appid,
            trade_state="SUCCESS",
            transaction_id="42" + str(abs(hash(out_trade_no)))[:26].zfill(26),
            success_time="2026-11-23T20:00:00+08:00",
        )
        if total is not None:
            trade["amount"] = {**trade["amount"], "total": total}
        return dict(trade)


def unavailable() -> ProviderUnavailableError:
    return ProviderUnavailableError("down", metadata={"provider_code": "SYSTEM_ERROR"})


class FakeGateways:
    """server.service.ports.Gateways: one FakeGateway per merchant; records which merchant was asked for."""

    def __init__(self, *merchants: MerchantIdentity) -> None:
        self.raw = {m: FakeGateway(m.merchant_id, m.app_id) for m in merchants}
        self._gateways = {m: WeChatPayGateway(fake) for m, fake in self.raw.items()}
        self.asked: list[MerchantIdentity] = []

    def gateway_for(self, merchant: MerchantIdentity) -> PaymentGateway:
        self.asked.append(merchant)
        return self._gateways[merchant]

    def identity(self, account: str) -> MerchantIdentity:
        return next(m for m in self._gateways if m.account == account)

    def for_account(self, account: str) -> PaymentGateway:
        return self.gateway_for(self.identity(account))
