"""Strict parsing of the emulated API's request bodies into typed requests (WeChat's limits, §3 and §6).

Every failure is a 400 PARAM_ERROR naming the field by JSON pointer, like the gateway's answers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sandbox.api.errors import ApiError, param_error

OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
OUT_REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
CHANNELS = ("jsapi", "app", "h5", "native")
_PREPAY_FIELDS = {
    "appid", "mchid", "description", "out_trade_no", "time_expire", "attach", "notify_url", "goods_tag",
    "support_fapiao", "amount", "payer", "detail", "scene_info", "settle_info", "limit_pay",
    "subsidy_info",  # WeixinCreditPay 贴息 (2025-10): accepted, as the real gateway does
}  # fmt: skip
# 服务商 (partner) prepay: the provider's sp_appid/sp_mchid and the sub-merchant's sub_mchid (+ sub_appid).
_PARTNER_PREPAY_FIELDS = (_PREPAY_FIELDS - {"appid", "mchid", "limit_pay"}) | {
    "sp_appid", "sp_mchid", "sub_appid", "sub_mchid",
}  # fmt: skip
_REFUND_FIELDS = {
    "transaction_id", "out_trade_no", "out_refund_no", "reason", "notify_url", "funds_account", "amount",
    "goods_detail", "sub_mchid",
}  # fmt: skip
_LIMIT_PAY = {"no_balance", "no_credit", "no_debit", "balance_only"}
_H5_TYPES = {"iOS", "Android", "Wap"}


@dataclass(frozen=True)
class PrepayRequest:
    channel: str
    appid: str
    mchid: str
    description: str
    out_trade_no: str
    notify_url: str
    total: int
    currency: str
    attach: str | None
    time_expire: datetime | None
    payer_openid: str | None
    payer_client_ip: str | None
    fingerprint: str  # the request's parameters, canonical: re-entry compares these
    # Partner (服务商) orders: `appid`/`mchid` above hold sp_appid/sp_mchid; `payer_openid` the sp_openid.
    sub_mchid: str | None = None
    sub_appid: str | None = None
    payer_sub_openid: str | None = None

    @property
    def partner(self) -> bool:
        return self.sub_mchid is not None


@dataclass(frozen=True)
class RefundRequest:
    out_refund_no: str
    out_trade_no: str | None
    transaction_id: str | None
    reason: str | None
    notify_url: str | None
    funds_account: str | None
    refund: int
    total: int
    currency: str
    sub_mchid: str | None = None  # partner refunds name the sub-merchant


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "PARAM_ERROR", "请求体不是合法的JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "PARAM_ERROR", "请求体必须是JSON对象")
    return data


def _text(data: dict[str, Any], name: str, ptr: str, max_len: int, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise param_error(ptr, "此字段为必填项")
        return None
    if not isinstance(value, str):
        raise param_error(ptr, "字段类型应为字符串", value)
    if required and not value:
        raise param_error(ptr, "此字段为必填项", value)
    if len(value) > max_len:
        raise param_error(ptr, f"字符串长度 {len(value)}，大于最大值 {max_len}", value)
    return value


def _required_text(data: dict[str, Any], name: str, ptr: str, max_len: int) -> str:
    return _text(data, name, ptr, max_len) or ""  # _text raises for a missing or empty required field


def _object(data: dict[str, Any], name: str, ptr: str, *, required: bool) -> dict[str, Any] | None:
    value = data.get(name)
    if value is None:
        if required:
            raise param_error(ptr, "此字段为必填项")
        return None
    if not isinstance(value, dict):
        raise param_error(ptr, "字段类型应为对象", value)
    return value


def _required_object(data: dict[str, Any], name: str, ptr: str) -> dict[str, Any]:
    return _object(data, name, ptr, required=True) or {}  # _object raises when it is missing


def _fen(data: dict[str, Any], name: str, ptr: str) -> int:
    value = data.get(name)
    if value is None:
        raise param_error(ptr, "此字段为必填项")
    if not isinstance(value, int) or isinstance(value, bool):
        raise param_error(ptr, "字段类型应为整数（单位：分）", value)
    if value < 1:
        raise param_error(ptr, f"数值 {value}，小于最小值 1", value)
    return value


def _currency(amount: dict[str, Any], ptr: str) -> str:
    currency = amount.get("currency", "CNY")
    if currency != "CNY":
        raise param_error(ptr, "Currency code is invalid", currency)
    return "CNY"


def _notify_url(data: dict[str, Any], max_len: int, *, required: bool) -> str | None:
    url = _text(data, "notify_url", "/notify_url", max_len, required=required)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise param_error("/notify_url", "必须是不带参数的绝对URL", url)
    return url


def _reject_unknown(data: dict[str, Any], allowed: set[str]) -> None:
    for name in sorted(set(data) - allowed):
        raise param_error(f"/{name}", "未知字段", data[name])


def _time_expire(data: dict[str, Any]) -> datetime | None:
    text = _text(data, "time_expire", "/time_expire", 64, required=False)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise param_error("/time_expire", "时间格式应为 RFC 3339", text) from exc
    if when.tzinfo is None:
        raise param_error("/time_expire", "时间须带时区偏移", text)
    return when


def _out_trade_no(data: dict[str, Any]) -> str:
    value = _required_text(data, "out_trade_no", "/out_trade_no", 32)
    if not OUT_TRADE_NO.fullmatch(value):
        raise param_error("/out_trade_no", "只能是6-32位数字、大小写字母、_-|*", value)
    return value


def _payer_openid(data: dict[str, Any], channel: str) -> str | None:
    payer = _object(data, "payer", "/payer", required=channel == "jsapi")
    if payer is None:
        return None
    _identity(payer)
    return _text(payer, "openid", "/payer/openid", 128, required=channel == "jsapi")


def _identity(payer: dict[str, Any]) -> None:
    """`payer.identity` (指定身份支付, 2025-02): accepted when it is an object with string fields."""
    identity = _object(payer, "identity", "/payer/identity", required=False)
    if identity is None:
        return
    for name in ("type", "number", "name"):
        _text(identity, name, f"/payer/identity/{name}", 1024, required=False)


def _partner_payer(
    data: dict[str, Any], channel: str, sub_appid: str | None
) -> tuple[str | None, str | None]:
    """(sp_openid, sub_openid): JSAPI needs one of them; a sub_openid only exists under a sub_appid."""
    payer = _object(data, "payer", "/payer", required=channel == "jsapi")
    if payer is None:
        return None, None
    _identity(payer)
    sp_openid = _text(payer, "sp_openid", "/payer/sp_openid", 128, required=False)
    sub_openid = _text(payer, "sub_openid", "/payer/sub_openid", 128, required=False)
    if channel == "jsapi" and not (sp_openid or sub_openid):
        raise param_error("/payer/sp_openid", "sp_openid 与 sub_openid 必须二选一")
    if sub_openid and not sub_appid:
        raise param_error("/sub_appid", "传入 sub_openid 时 sub_appid 必填")
    return sp_openid, sub_openid


def _client_ip(data: dict[str, Any], channel: str) -> str | None:
    scene = _object(data, "scene_info", "/scene_info", required=channel == "h5")
    if scene is None:
        return None
    ip = _required_text(scene, "payer_client_ip", "/scene_info/payer_client_ip", 45)
    if channel == "h5":
        h5_info = _required_object(scene, "h5_info", "/scene_info/h5_info")
        h5_type = _required_text(h5_info, "type", "/scene_info/h5_info/type", 32)
        if h5_type not in _H5_TYPES:
            raise param_error("/scene_info/h5_info/type", "取值应为 iOS、Android 或 Wap", h5_type)
    return ip


def _optional_extras(data: dict[str, Any]) -> None:
    _text(data, "goods_tag", "/goods_tag", 32, required=False)
    if "support_fapiao" in data and not isinstance(data["support_fapiao"], bool):
        raise param_error("/support_fapiao", "字段类型应为布尔值", data["support_fapiao"])
    _object(data, "detail", "/detail", required=False)
    _object(data, "settle_info", "/settle_info", required=False)
    _object(data, "subsidy_info", "/subsidy_info", required=False)
    limit_pay = data.get("limit_pay")
    if limit_pay is not None and (not isinstance(limit_pay, list) or not set(limit_pay) <= _LIMIT_PAY):
        raise param_error("/limit_pay", "取值不在允许范围内", limit_pay)


def parse_partner_prepay(channel: str, body: bytes) -> PrepayRequest:
    """`/v3/pay/partner/transactions/{channel}`: the same rules, partner field names."""
    data = parse_json_object(body)
    _reject_unknown(data, _PARTNER_PREPAY_FIELDS)
    amount = _required_object(data, "amount", "/amount")
    sub_appid = _text(data, "sub_appid", "/sub_appid", 32, required=False)
    sp_openid, sub_openid = _partner_payer(data, channel, sub_appid)
    request = PrepayRequest(
        channel=channel,
        appid=_required_text(data, "sp_appid", "/sp_appid", 32),
        mchid=_required_text(data, "sp_mchid", "/sp_mchid", 32),
        description=_required_text(data, "description", "/description", 127),
        out_trade_no=_out_trade_no(data),
        notify_url=_notify_url(data, 255, required=True) or "",
        total=_fen(amount, "total", "/amount/total"),
        currency=_currency(amount, "/amount/currency"),
        attach=_text(data, "attach", "/attach", 128, required=False),
        time_expire=_time_expire(data),
        payer_openid=sp_openid,
        payer_client_ip=_client_ip(data, channel),
        fingerprint=json.dumps({"channel": channel, **data}, sort_keys=True, ensure_ascii=False),
        sub_mchid=_required_text(data, "sub_mchid", "/sub_mchid", 32),
        sub_appid=sub_appid,
        payer_sub_openid=sub_openid,
    )
    _optional_extras(data)
    return request


def parse_prepay(channel: str, body: bytes) -> PrepayRequest:
    data = parse_json_object(body)
    _reject_unknown(data, _PREPAY_FIELDS)
    amount = _required_object(data, "amount", "/amount")
    request = PrepayRequest(
        channel=channel,
        appid=_required_text(data, "appid", "/appid", 32),
        mchid=_required_text(data, "mchid", "/mchid", 32),
        description=_required_text(data, "description", "/description", 127),
        out_trade_no=_out_trade_no(data),
        notify_url=_notify_url(data, 255, required=True) or "",
        total=_fen(amount, "total", "/amount/total"),
        currency=_currency(amount, "/amount/currency"),
        attach=_text(data, "attach", "/attach", 128, required=False),
        time_expire=_time_expire(data),
        payer_openid=_payer_openid(data, channel),
        payer_client_ip=_client_ip(data, channel),
        fingerprint=json.dumps({"channel": channel, **data}, sort_keys=True, ensure_ascii=False),
    )
    _optional_extras(data)
    return request


def parse_refund(body: bytes) -> RefundRequest:
    data = parse_json_object(body)
    _reject_unknown(data, _REFUND_FIELDS)
    out_refund_no = _required_text(data, "out_refund_no", "/out_refund_no", 64)
    if not OUT_REFUND_NO.fullmatch(out_refund_no):
        raise param_error("/out_refund_no", "只能是数字、大小写字母、_-|*@", out_refund_no)
    out_trade_no = _text(data, "out_trade_no", "/out_trade_no", 32, required=False)
    transaction_id = _text(data, "transaction_id", "/transaction_id", 32, required=False)
    if not (out_trade_no or transaction_id):
        raise param_error("/out_trade_no", "transaction_id 与 out_trade_no 必须二选一")
    amount = _required_object(data, "amount", "/amount")
    funds_account = _text(data, "funds_account", "/funds_account", 32, required=False)
    if funds_account not in {None, "AVAILABLE", "UNSETTLED"}:
        raise param_error("/funds_account", "取值应为 AVAILABLE 或 UNSETTLED", funds_account)
    return RefundRequest(
        out_refund_no=out_refund_no,
        out_trade_no=out_trade_no,
        transaction_id=transaction_id,
        reason=_text(data, "reason", "/reason", 80, required=False),
        notify_url=_notify_url(data, 256, required=False),
        funds_account=funds_account,
        refund=_fen(amount, "refund", "/amount/refund"),
        total=_fen(amount, "total", "/amount/total"),
        currency=_currency(amount, "/amount/currency"),
        sub_mchid=_text(data, "sub_mchid", "/sub_mchid", 32, required=False),
    )
