"""The emulated WeChat Pay APIv3 endpoints (moto's `responses.py`): parse, call the backend, render.

A middleware checks the merchant's signature over the raw request and applies API faults before any
handler runs; every answer after that is signed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from sandbox.api import errors
from sandbox.api.errors import INJECTED_ERRORS, ApiError
from sandbox.api.validation import CHANNELS, PrepayRequest, parse_json_object, parse_prepay, parse_refund
from sandbox.api.wire import signed, signed_error, unsigned_error
from sandbox.engine.models import Trade, wire_time
from sandbox.engine.state import Sandbox
from sandbox.engine.world import WORLD
from sandbox.keys import signing
from sandbox.keys.keyring import PlatformCert

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AUTH = web.RequestKey("wechatpay_authorization", signing.Authorization)
# The account the request authenticated as (a direct merchant or a provider): it signs the answer.
BOOK = web.RequestKey("sandbox_account", Sandbox)
API_PREFIX = "/v3/"
NO_CERTIFICATES = "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥。"
# The other ways `/v3/certificates` refuses (config `certificates_refusal`; anchors-2026-12 §5.2).
CERTIFICATE_REFUSALS = {
    "403": ApiError(403, "NO_AUTH", "商户无权限，请检查商户号状态"),
    "404": ApiError(
        404, "RESOURCE_NOT_EXISTS", "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥。"
    ),
    "500": ApiError(500, "SYSTEM_ERROR", "系统繁忙，请稍后重试"),
}


# --- middleware -----------------------------------------------------------------------------------


@web.middleware
async def emulated_api(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    try:
        sandbox = request[BOOK] = _account(request)
        request[AUTH] = await _authenticate(sandbox, request)
    except signing.SignatureError as exc:
        return unsigned_error(errors.sign_error(str(exc)))
    try:
        injected = await _inject_api_faults(sandbox, request)
        response = await handler(request)
    except ApiError as exc:
        return unsigned_error(exc) if exc.code == "SIGN_ERROR" else signed_error(sandbox, request, exc)
    return response if injected is None else signed_error(sandbox, request, injected)


def _account(request: web.Request) -> Sandbox:
    """The account named by the Authorization header's mchid; an unknown one is an auth failure."""
    auth = signing.parse_authorization(request.headers.get("Authorization", ""))
    book = request.app[WORLD].platform_account(auth.mchid)
    if book is None:
        raise signing.SignatureError("商户号不存在或与证书不匹配")
    return book


def book(request: web.Request) -> Sandbox:
    return request[BOOK]


async def _authenticate(sandbox: Sandbox, request: web.Request) -> signing.Authorization:
    creds = sandbox.credentials
    auth = signing.parse_authorization(request.headers.get("Authorization", ""))
    if auth.serial_no.upper() != creds.merchant_serial_no.upper():
        raise signing.SignatureError("商户证书序列号有误。")
    signing.verify_request(
        auth,
        creds.merchant_public_key,
        method=request.method,
        target=request.raw_path,
        body=await request.read(),
        now=int(sandbox.clock.wall().timestamp()),  # wall: see sandbox/clock.py
    )
    return auth


async def _inject_api_faults(sandbox: Sandbox, request: web.Request) -> ApiError | None:
    """Latency, hangs and errors. Returns an error to answer *after* processing, if so configured."""
    faults = sandbox.settings.faults_for(await _order_of(request))
    latency_ms = faults.api_latency_ms + sandbox.dice.jitter(faults.api_latency_jitter_ms)
    if latency_ms > 0:
        await asyncio.sleep(latency_ms / 1000)
    if sandbox.dice.roll(faults.hang_rate):
        await asyncio.sleep(faults.hang_timeout_s)
        raise INJECTED_ERRORS["SYSTEM_ERROR"]
    if not sandbox.dice.roll(faults.api_error_rate):
        return None
    if faults.api_error_after_processing:  # the ambiguous case: it happened, the caller can't tell
        return INJECTED_ERRORS[faults.api_error_code]
    raise INJECTED_ERRORS[faults.api_error_code]


async def _order_of(request: web.Request) -> str | None:
    """The out_trade_no a call is about, so per-order API faults can apply (path first, then body)."""
    if "out_trade_no" in request.match_info:
        return request.match_info["out_trade_no"]
    if request.method != "POST":
        return None
    try:
        value = json.loads(await request.read()).get("out_trade_no")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _check_mchid(request: web.Request, mchid: str) -> None:
    if mchid != request[AUTH].mchid:
        raise errors.sign_error("http header中的mchid与post payload中的mchid不匹配")


def _query_mchid(request: web.Request) -> None:
    mchid = request.query.get("mchid")
    if not mchid:
        raise errors.param_error("mchid", "此字段为必填项", "", location="uri_template")
    _check_mchid(request, mchid)


# --- payments -------------------------------------------------------------------------------------


async def prepay(request: web.Request) -> web.StreamResponse:
    sandbox = request[BOOK]
    channel = request.match_info["channel"]
    order = parse_prepay(channel, await request.read())
    _check_mchid(request, order.mchid)
    if order.appid not in sandbox.appids:
        raise ApiError(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
    request.app[WORLD].bind_openid(order.payer_openid, order.appid)
    return await answer_prepay(request, sandbox, order)


async def answer_prepay(request: web.Request, sandbox: Sandbox, order: PrepayRequest) -> web.StreamResponse:
    """Create or re-enter the trade in `sandbox` (the direct merchant's or the sub-merchant's book)."""
    trade, created = sandbox.backend.prepay(order)
    sandbox.simulator.after_prepay(trade, created=created)
    if sandbox.settings.faults_for(trade.out_trade_no).notify_before_prepay_response:
        _, dispatch = sandbox.simulator.pay(trade.out_trade_no)
        if dispatch is not None:  # the merchant hears "paid" before it hears the prepay_id
            await dispatch.first_attempt.wait()
    return signed(sandbox, request, 200, _prepay_answer(request, trade))


def _prepay_answer(request: web.Request, trade: Trade) -> dict[str, str]:
    channel = trade.request.channel
    if channel == "native":
        return {"code_url": f"weixin://wxpay/bizpayurl?pr={trade.cashier_token}"}
    if channel == "h5":
        package = secrets.randbelow(10**10)
        base = f"{request.scheme}://{request.host}/sandbox/cashier/{trade.cashier_token}"
        return {"h5_url": f"{base}?prepay_id={quote(trade.prepay_id)}&package={package}"}
    return {"prepay_id": trade.prepay_id}


async def query_by_out_trade_no(request: web.Request) -> web.StreamResponse:
    _query_mchid(request)
    sandbox = request[BOOK]
    trade = sandbox.backend.trade(request.match_info["out_trade_no"])
    return signed(sandbox, request, 200, trade.to_wire())


async def query_by_transaction_id(request: web.Request) -> web.StreamResponse:
    _query_mchid(request)
    sandbox = request[BOOK]
    trade = sandbox.backend.trade_by_transaction_id(request.match_info["transaction_id"])
    return signed(sandbox, request, 200, trade.to_wire())


async def close(request: web.Request) -> web.StreamResponse:
    sandbox = request[BOOK]
    body = parse_json_object(await request.read())
    mchid = body.get("mchid")
    if not isinstance(mchid, str) or not mchid:
        raise errors.param_error("/mchid", "此字段为必填项", mchid)
    _check_mchid(request, mchid)
    sandbox.backend.close(request.match_info["out_trade_no"])
    return signed(sandbox, request, 204, None)


# --- refunds --------------------------------------------------------------------------------------


def refund_book(request: web.Request, sub_mchid: str | None) -> Sandbox:
    """Refunds share one endpoint: a provider names the sub-merchant (`sub_mchid`), a direct merchant
    must not (NO_AUTH: it has no sub-merchants); a provider without one refunds its own orders."""
    account = request[BOOK]
    if sub_mchid is None:
        return account
    if account.kind != "provider":
        raise ApiError(403, "NO_AUTH", "商户无服务商权限，不能指定子商户号")
    return request.app[WORLD].sub_merchant(account.mchid, sub_mchid, refund=True)


async def create_refund(request: web.Request) -> web.StreamResponse:
    parsed = parse_refund(await request.read())
    sandbox = refund_book(request, parsed.sub_mchid)
    refund = sandbox.simulator.refund(parsed)
    return signed(sandbox, request, 200, refund.to_wire())


async def query_refund(request: web.Request) -> web.StreamResponse:
    sandbox = refund_book(request, request.query.get("sub_mchid"))
    refund = sandbox.backend.get_refund(request.match_info["out_refund_no"])
    return signed(sandbox, request, 200, refund.to_wire())


# --- certificates ---------------------------------------------------------------------------------


async def certificates(request: web.Request) -> web.StreamResponse:
    sandbox = request[BOOK]
    refusal = sandbox.settings.config.certificates_refusal
    if refusal in CERTIFICATE_REFUSALS:
        raise CERTIFICATE_REFUSALS[refusal]
    if not sandbox.keys.certificates_available:
        raise errors.resource_not_exists(NO_CERTIFICATES)
    listed = sandbox.keys.listed_certificates()
    return signed(sandbox, request, 200, {"data": [_certificate_entry(sandbox, cert) for cert in listed]})


def _certificate_entry(sandbox: Sandbox, cert: PlatformCert) -> dict[str, object]:
    nonce = secrets.token_hex(6)  # 12 characters
    apiv3_key = sandbox.credentials.apiv3_key
    ciphertext = signing.encrypt_resource(apiv3_key, nonce, "certificate", cert.pem.encode())
    return {  # the validity is the certificate's own (X.509 notBefore / notAfter)
        "serial_no": cert.serial_no,
        "effective_time": wire_time(cert.not_before),
        "expire_time": wire_time(cert.not_after),
        "encrypt_certificate": {
            "algorithm": signing.AEAD_ALGORITHM,
            "nonce": nonce,
            "associated_data": "certificate",
            "ciphertext": ciphertext,
        },
    }


def add_routes(app: web.Application) -> None:
    channels = "|".join(CHANNELS)
    app.router.add_post(f"/v3/pay/transactions/{{channel:{channels}}}", prepay)
    app.router.add_get("/v3/pay/transactions/out-trade-no/{out_trade_no}", query_by_out_trade_no)
    app.router.add_get("/v3/pay/transactions/id/{transaction_id}", query_by_transaction_id)
    app.router.add_post("/v3/pay/transactions/out-trade-no/{out_trade_no}/close", close)
    app.router.add_post("/v3/refund/domestic/refunds", create_refund)
    app.router.add_get("/v3/refund/domestic/refunds/{out_refund_no}", query_refund)
    app.router.add_get("/v3/certificates", certificates)
