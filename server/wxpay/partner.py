"""The service-provider (服务商) form of WeChat Pay's payment operations, for one sub-merchant.

`PartnerOperations` is `WeChatPayOperations` (server.wxpay.gateway) over the provider's client: the
provider signs and verifies with its own keys; every call names `sp_mchid` and the sub-merchant's
`sub_mchid`, the prepay `sp_appid` (and `sub_appid` when the payer is in the sub-merchant's own app,
then with `sub_openid` instead of `sp_openid`). Paths: `/v3/pay/partner/transactions/...`; refunds share
the direct endpoints with `sub_mchid` in the body or the query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from server.wxpay.channels import endpoint_of
from server.wxpay.client import WeChatPayClient

PARTNER: Final = "/v3/pay/partner/transactions"


def _segment(value: str) -> str:
    return quote(value, safe="")


class PartnerOperations:
    def __init__(self, client: WeChatPayClient, sub_mchid: str) -> None:
        self._client = client
        self._sub_mchid = sub_mchid

    @property
    def _ids(self) -> dict[str, str]:
        return {"sp_mchid": self._client.credentials.mchid, "sub_mchid": self._sub_mchid}

    @property
    def _query(self) -> str:
        return f"sp_mchid={_segment(self._client.credentials.mchid)}&sub_mchid={_segment(self._sub_mchid)}"

    def prepay(self, channel: str, body: Mapping[str, Any]) -> dict[str, Any]:
        endpoint = endpoint_of(channel)
        if endpoint is None:
            raise ValueError(f"unknown prepay channel {channel!r}")
        payload = dict(body)
        payload["sp_appid"] = payload.pop("appid", self._client.credentials.appid)
        payer = payload.pop("payer", None)
        if isinstance(payer, Mapping):  # the openid belongs to the app the payer is in
            who = "sub_openid" if "sub_appid" in payload else "sp_openid"
            payload["payer"] = {who: payer.get("openid")}
        payload.update(self._ids)
        return self._client.signed_call(f"prepay_{endpoint}", "POST", f"{PARTNER}/{endpoint}", payload)

    def query_by_out_trade_no(self, out_trade_no: str) -> dict[str, Any]:
        path = f"{PARTNER}/out-trade-no/{_segment(out_trade_no)}?{self._query}"
        return self._client.signed_call("query_order", "GET", path)

    def close(self, out_trade_no: str) -> None:
        path = f"{PARTNER}/out-trade-no/{_segment(out_trade_no)}/close"
        self._client.signed_call("close_order", "POST", path, self._ids)

    def refund(self, body: Mapping[str, Any]) -> dict[str, Any]:
        payload = {**body, "sub_mchid": self._sub_mchid}
        return self._client.signed_call("refund", "POST", "/v3/refund/domestic/refunds", payload)

    def query_refund(self, out_refund_no: str) -> dict[str, Any]:
        path = f"/v3/refund/domestic/refunds/{_segment(out_refund_no)}?sub_mchid={_segment(self._sub_mchid)}"
        return self._client.signed_call("query_refund", "GET", path)

    def apply_abnormal_refund(self, refund_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        path = f"/v3/refund/domestic/refunds/{_segment(refund_id)}/apply-abnormal-refund"
        payload = {**body, "sub_mchid": self._sub_mchid}
        return self._client.signed_call("apply_abnormal_refund", "POST", path, payload)

    def encrypt_sensitive(self, plaintext: str) -> str:
        return self._client.encrypt_sensitive(plaintext)

    def jsapi_pay_params(self, prepay_id: str, appid: str | None = None) -> dict[str, str]:
        return self._client.jsapi_pay_params(prepay_id, appid)  # signed with the provider's key

    def app_pay_params(
        self, prepay_id: str, appid: str | None = None, partner_id: str | None = None
    ) -> dict[str, str]:
        # The OpenSDK's partnerId is the sub-merchant's number in partner mode [inf: partner APP docs].
        return self._client.app_pay_params(prepay_id, appid, partner_id or self._sub_mchid)

    def shutdown(self) -> None:
        """The client is the provider's: its own gateway shuts it down."""
