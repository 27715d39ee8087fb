"""`POST /v3/security/echo` (商户签名验签／加解密测试, added 2026-04; research anchors-2026-12 §5.1).

The merchant proves its whole key set in one call: the request is signed with its API key (checked by
the middleware like any call), the answer is signed with the WeChat Pay key its `Wechatpay-Serial` names
(the public key or a platform certificate: both key modes), `encrypted_echo_message` (optional) must be
RSA-OAEP under that same WeChat Pay key and decrypt to `echo_message`, and the answer carries
`encrypted_echo_message` sealed to the merchant's own key (its API certificate's public key) for the
merchant to decrypt. With `notify_url` a signed test notification (`SECURITY.ECHO`, resource sealed with
the APIv3 key) goes there too [inf: the event name and resource shape are the sandbox's].
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from sandbox.api import errors
from sandbox.api.errors import ApiError
from sandbox.api.routes import BOOK
from sandbox.api.validation import parse_json_object
from sandbox.api.wire import signed

_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303


async def echo(request: web.Request) -> web.StreamResponse:
    sandbox = request[BOOK]
    serial = request.headers.get("Wechatpay-Serial", "")
    creds = sandbox.credentials
    known = {creds.wechatpay_public_key_id: creds.wechatpay_private_key}
    known.update({cert.serial_no: cert.private_key for cert in sandbox.keys.listed_certificates()})
    if sandbox.keys.mode == "public_key_only":
        known = {creds.wechatpay_public_key_id: creds.wechatpay_private_key}
    if not serial:
        raise errors.param_error("Wechatpay-Serial", "此字段为必填项", "", location="header")
    if serial not in known:
        raise ApiError(
            400, "PARAM_ERROR", f"Wechatpay-Serial {serial} 不是该商户可用的微信支付公钥或平台证书"
        )
    body = parse_json_object(await request.read())
    message = body.get("echo_message")
    if not isinstance(message, str) or not message or len(message) > 128:
        raise errors.param_error("/echo_message", "此字段为必填项，最长128个字符", message)
    sealed = body.get("encrypted_echo_message")
    if sealed is not None:
        try:
            opened = known[serial].decrypt(base64.b64decode(str(sealed), validate=True), _OAEP).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise errors.param_error("/encrypted_echo_message", "解密失败", sealed) from None
        if opened != message:
            raise errors.param_error("/encrypted_echo_message", "解密结果与 echo_message 不一致", sealed)
    notify_url = body.get("notify_url")
    if isinstance(notify_url, str) and notify_url:
        note = sandbox.notifier.build(
            event_type="SECURITY.ECHO",
            summary="签名验签测试",
            resource={"echo_message": message},
            url=notify_url,
            out_trade_no="",
        )
        sandbox.notifier.submit(note)
    back = base64.b64encode(creds.merchant_public_key.encrypt(message.encode(), _OAEP)).decode()
    return signed(sandbox, request, 200, {"echo_message": message, "encrypted_echo_message": back})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v3/security/echo", echo)
