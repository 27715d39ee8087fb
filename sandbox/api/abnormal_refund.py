"""POST /v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund (发起异常退款).

A refund that settled ABNORMAL (the payer's card refused the money) is re-routed to the payer's debit
card (USER_BANK_CARD: bank_type, plus bank_account and real_name encrypted with WeChat Pay's key) or to
the merchant's bank account (MERCHANT_BANK_CARD). The answer is the refund, PROCESSING again.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from sandbox.api import errors
from sandbox.api.routes import refund_book
from sandbox.api.validation import parse_json_object
from sandbox.api.wire import signed
from sandbox.engine.state import Sandbox

ROUTES = ("USER_BANK_CARD", "MERCHANT_BANK_CARD")
_CARD_FIELDS = ("bank_type", "bank_account", "real_name")
_ENCRYPTED = ("bank_account", "real_name")


async def apply_abnormal_refund(request: web.Request) -> web.StreamResponse:
    body = parse_json_object(await request.read())
    sub_mchid = body.get("sub_mchid")
    sandbox = refund_book(request, sub_mchid if isinstance(sub_mchid, str) else None)
    out_refund_no = body.get("out_refund_no")
    if not isinstance(out_refund_no, str) or not out_refund_no:
        raise errors.param_error("out_refund_no", "缺少参数 out_refund_no")
    route = body.get("type")
    if route not in ROUTES:
        raise errors.param_error("type", "type 应为 USER_BANK_CARD 或 MERCHANT_BANK_CARD", route)
    if route == "USER_BANK_CARD":
        for name in _CARD_FIELDS:
            if not isinstance(body.get(name), str) or not body[name]:
                raise errors.param_error(name, f"退款至用户银行卡时 {name} 必填")
        for name in _ENCRYPTED:
            if not _decrypts(sandbox, body[name]):
                raise errors.param_error(name, f"{name} 解密失败，请使用微信支付公钥或平台证书加密")
    refund = sandbox.simulator.reroute_abnormal(request.match_info["refund_id"], out_refund_no)
    return signed(sandbox, request, 200, refund.to_wire())


def _decrypts(sandbox: Sandbox, ciphertext: str) -> bool:
    """Sensitive fields are RSAES-OAEP (SHA-1) under the public key or a platform certificate's key."""
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
    except binascii.Error:
        return False
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    for key in (sandbox.credentials.wechatpay_private_key, sandbox.credentials.platform_private_key):
        try:
            key.decrypt(sealed, oaep)
        except ValueError:
            continue
        return True
    return False


def add_routes(app: web.Application) -> None:
    app.router.add_post(
        "/v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund", apply_abnormal_refund
    )
