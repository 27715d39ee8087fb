"""WeChat Pay as the service layer's PaymentGateway (server.service.ports), for one merchant.

`WeChatPayGateway` speaks our typed shapes over that merchant's raw APIv3 client (server.wxpay.client);
server.adapters.gateways hands each merchant's gateway to the use cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Protocol

from server.domain.errors import ProviderRejectedError
from server.domain.provider import (
    AbnormalRefundRequest,
    ChannelRules,
    CloseOutcome,
    PayView,
    Prepay,
    PrepayRequest,
    RefundReport,
    RefundRequest,
    TransactionReport,
)
from server.wxpay.channels import channel_rules, endpoint_of, prepay_validity
from server.wxpay.wire import (
    abnormal_refund_body,
    prepay_answer,
    prepay_body,
    refund_body,
    refund_report,
    transaction_report,
)

_CLOSE_CODES: Final = {
    "ORDER_NOT_EXIST": CloseOutcome.NOT_AT_PROVIDER,
    "ORDER_CLOSED": CloseOutcome.ALREADY_CLOSED,
}


class WeChatPayOperations(Protocol):
    """The raw APIv3 operations (server.wxpay.client.WeChatPayClient; a fake one in service tests)."""

    def prepay(self, channel: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def query_by_out_trade_no(self, out_trade_no: str) -> dict[str, Any]: ...
    def close(self, out_trade_no: str) -> None: ...
    def refund(self, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def query_refund(self, out_refund_no: str) -> dict[str, Any]: ...
    def apply_abnormal_refund(self, refund_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def encrypt_sensitive(self, plaintext: str) -> str: ...
    def jsapi_pay_params(self, prepay_id: str, appid: str | None = None) -> dict[str, str]: ...
    def app_pay_params(
        self, prepay_id: str, appid: str | None = None, partner_id: str | None = None
    ) -> dict[str, str]: ...
    def shutdown(self) -> None: ...


class WeChatPayGateway:
    """server.service.ports.PaymentGateway over WeChat Pay APIv3, for the merchant its client signs as."""

    def __init__(
        self,
        client: WeChatPayOperations,
        apps: Mapping[str, str] | None = None,
        sub_apps: Mapping[str, str] | None = None,
    ) -> None:
        """`apps`: the account's app per channel (issue 18); None = the client's one appid everywhere.
        A channel the account has no app for is not a channel of this gateway. `sub_apps`: a
        sub-merchant's own apps (sub_appid) per channel, over a partner client (server.wxpay.partner)."""
        self._client = client
        self._apps = apps
        self._sub_apps = sub_apps or {}

    def channel(self, name: str) -> ChannelRules | None:
        if self._apps is not None and name not in self._apps:
            return None
        return channel_rules(name)

    def prepay(self, request: PrepayRequest) -> Prepay:
        endpoint, body = prepay_body(request)
        if self._apps is not None:
            body["appid"] = self._apps[request.channel]  # the app the payer pays in decides the appid
        if request.channel in self._sub_apps:
            body["sub_appid"] = self._sub_apps[request.channel]
        return prepay_answer(self._client.prepay(endpoint, body))

    def pay_view(self, channel: str, prepay: Prepay, at: datetime) -> PayView:
        """How the client pays `prepay` (made at `at`) on `channel`: JSAPI and mini-programs sign
        `prepay_id=…` for the JS bridge, APP signs for the OpenSDK, NATIVE and H5 open a URL."""
        endpoint = endpoint_of(channel) or ""
        params: dict[str, str] = {}
        # The client pays in the sub-merchant's own app when it has one on the channel.
        appid = self._sub_apps.get(channel) or (self._apps.get(channel) if self._apps is not None else None)
        if endpoint == "jsapi":
            params = self._client.jsapi_pay_params(prepay.prepay_id, appid)
        elif endpoint == "app":
            params = self._client.app_pay_params(prepay.prepay_id, appid)
        return PayView(
            prepay_id=prepay.prepay_id,
            expires_at=at + prepay_validity(endpoint),
            params=params,
            code_url=prepay.payload if endpoint == "native" else "",
            h5_url=prepay.payload if endpoint == "h5" else "",
        )

    def query_transaction(self, out_trade_no: str) -> TransactionReport | None:
        """None: WeChat never saw a prepay for it."""
        try:
            return transaction_report(self._client.query_by_out_trade_no(out_trade_no))
        except ProviderRejectedError as error:
            if error.metadata.get("provider_code") == "ORDER_NOT_EXIST":
                return None
            raise

    def close(self, out_trade_no: str) -> CloseOutcome:
        try:
            self._client.close(out_trade_no)
        except ProviderRejectedError as error:
            code = error.metadata.get("provider_code", "")
            if code == "ORDERPAID":
                return CloseOutcome.ALREADY_PAID
            if code in _CLOSE_CODES:
                return _CLOSE_CODES[code]
            raise
        return CloseOutcome.CLOSED

    def refund(self, request: RefundRequest) -> RefundReport:
        return refund_report(self._client.refund(refund_body(request)))

    def query_refund(self, out_refund_no: str) -> RefundReport:
        return refund_report(self._client.query_refund(out_refund_no))

    def apply_abnormal_refund(self, request: AbnormalRefundRequest) -> RefundReport:
        body = abnormal_refund_body(request, self._client.encrypt_sensitive)
        return refund_report(self._client.apply_abnormal_refund(request.refund_id, body))

    def shutdown(self) -> None:
        self._client.shutdown()
