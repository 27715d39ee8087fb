"""WeChatPayClient against a scripted fake gateway on 127.0.0.1 (real sockets, real signatures).

The fake signs its answers with the test WeChat Pay key through `cryptography` directly, so nothing in
server.wxpay.signing is trusted to check itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from server.config import Settings
from server.domain.errors import ProviderRejectedError, ProviderUnavailableError
from server.wxpay.client import WeChatPayClient, from_settings
from server.wxpay.credentials import MerchantCredentials, load_credentials
from server.wxpay.signing import parse_authorization

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
KEYS_DIR = VECTORS_DIR / "keys"
VECTORS: dict[str, Any] = json.loads((VECTORS_DIR / "wechatpay_v3.json").read_text(encoding="utf-8"))
CERT_VECTOR = next(v for v in VECTORS["resources"] if v["associated_data"] == "certificate")
CERT_SERIAL = "3A8F6C2D1E0B9A8776655443322110FFEEDDCCBB"

_wechatpay_key = load_pem_private_key((KEYS_DIR / "wechatpay_private_key.pem").read_bytes(), password=None)
_merchant_public = load_pem_public_key((KEYS_DIR / "merchant_public_key.pem").read_bytes())
assert isinstance(_wechatpay_key, rsa.RSAPrivateKey)
assert isinstance(_merchant_public, rsa.RSAPublicKey)
WECHATPAY_KEY: rsa.RSAPrivateKey = _wechatpay_key
MERCHANT_PUBLIC: rsa.RSAPublicKey = _merchant_public

Signing = Literal["good", "none", "forged"]


# --- the fake gateway -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    signing: Signing = "good"
    hang: bool = False
    serial: str = VECTORS["wechatpay_public_key_id"]

    def raw_body(self) -> bytes:
        if self.body is None:
            return b""
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()


def error(status: int, code: str, message: str = "") -> Reply:
    return Reply(status=status, body={"code": code, "message": message or code})


def wechat_signature(timestamp: str, nonce: str, body: bytes) -> str:
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    return base64.b64encode(WECHATPAY_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


@dataclass
class FakeGateway:
    """Answers from `script` in order, then `default`; or from `route` when a test sets one."""

    default: Reply = field(default_factory=lambda: Reply(body={"ok": True}))
    script: deque[Reply] = field(default_factory=deque)
    route: Callable[[Seen], Reply] | None = None
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def next_reply(self, request: Seen) -> Reply:
        with self._lock:
            self.seen.append(request)
            if self.route is not None:
                return self.route(request)
            return self.script.popleft() if self.script else self.default

    async def handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.raw_path, dict(request.headers), await request.read())
        reply = self.next_reply(seen)
        if reply.hang:
            await self.released.wait()
        body = reply.raw_body()
        headers = {"Request-ID": f"{uuid.uuid4().hex.upper()}-0"}
        if reply.signing != "none":
            timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
            signature = wechat_signature(timestamp, nonce, body)
            if reply.signing == "forged":
                signature = wechat_signature(timestamp, nonce, body + b"tampered")
            headers |= {
                "Wechatpay-Timestamp": timestamp,
                "Wechatpay-Nonce": nonce,
                "Wechatpay-Serial": reply.serial,
                "Wechatpay-Signature": signature,
                "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            }
        if body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        return web.Response(status=reply.status, body=body, headers=headers)

    def serve(self, ready: threading.Event, stop: threading.Event) -> None:
        asyncio.run(self._serve(ready, stop))

    async def _serve(self, ready: threading.Event, stop: threading.Event) -> None:
        self.released = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        ready.set()
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        threading.Thread(
            target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopping.set)), daemon=True
        ).start()
        await stopping.wait()
        self.released.set()
        await runner.cleanup()


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=fake.serve, args=(ready, stop), daemon=True)
    thread.start()
    assert ready.wait(5), "fake gateway did not start"
    yield fake
    stop.set()
    thread.join(5)


def write_bundle(directory: Path, *, cert_mode: bool = False) -> Path:
    merchant = {
        "mchid": VECTORS["mchid"],
        "appid": VECTORS["appid"],
        "merchant_serial_no": VECTORS["merchant_serial_no"],
        "apiv3_key": VECTORS["apiv3_key"],
        "wechatpay_public_key_id": "" if cert_mode else VECTORS["wechatpay_public_key_id"],
        "platform_cert_serial_no": "",
    }
    (directory / "merchant.json").write_text(json.dumps(merchant), encoding="utf-8")
    shutil.copy(KEYS_DIR / "merchant_private_key.pem", directory)
    if not cert_mode:
        shutil.copy(KEYS_DIR / "wechatpay_public_key.pem", directory)
    else:
        # Cert mode starts knowing no certificate at all: the client must download one lazily.
        (directory / "platform_cert.pem").write_text(_unrelated_cert_pem())
    return directory


def _unrelated_cert_pem() -> str:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "retired platform cert")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1111)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def credentials(tmp_path: Path) -> MerchantCredentials:
    return load_credentials(write_bundle(tmp_path))


@pytest.fixture
def make_client(
    gateway: FakeGateway, credentials: MerchantCredentials
) -> Iterator[Callable[..., WeChatPayClient]]:
    made: list[WeChatPayClient] = []

    def build(**overrides: Any) -> WeChatPayClient:
        options: dict[str, Any] = {
            "connect_timeout": 0.5,
            "timeout": 2.0,
            "max_attempts": 3,
            "backoff_base": 0.01,
            "breaker_fail_max": 50,
            "breaker_reset_s": 10.0,
            **overrides,
        }
        creds = options.pop("credentials", credentials)
        client = WeChatPayClient(creds, options.pop("base_url", gateway.url), **options)
        made.append(client)
        return client

    yield build
    for client in made:
        client.shutdown()


def assert_merchant_signed(seen: Seen) -> dict[str, str]:
    auth = parse_authorization(seen.headers["Authorization"])
    assert auth["mchid"] == VECTORS["mchid"]
    assert auth["serial_no"] == VECTORS["merchant_serial_no"]
    message = (
        f"{seen.method}\n{seen.target}\n{auth['timestamp']}\n{auth['nonce_str']}\n".encode()
        + seen.body
        + b"\n"
    )
    try:
        MERCHANT_PUBLIC.verify(
            base64.b64decode(auth["signature"]), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:  # pragma: no cover - the assertion message is the point
        pytest.fail(f"request signature does not verify for {seen.method} {seen.target}")
    assert abs(int(auth["timestamp"]) - time.time()) < 60
    return auth


def out_trade_no() -> str:
    return f"T{uuid.uuid4().hex[:20]}"


# --- signing and the happy paths ------------------------------------------------------------------


def test_prepay_is_signed_over_the_exact_utf8_bytes(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.default = Reply(body={"prepay_id": "wx0112000019552265"})
    client = make_client()
    trade_no = out_trade_no()
    result = client.prepay(
        "jsapi",
        {
            "description": "VIP 月卡",
            "out_trade_no": trade_no,
            "notify_url": "https://merchant.example.com/wxpay/notify",
            "amount": {"total": 1990, "currency": "CNY"},
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        },
    )
    assert result == {"prepay_id": "wx0112000019552265"}
    [seen] = gateway.seen
    assert (seen.method, seen.target) == ("POST", "/v3/pay/transactions/jsapi")
    assert_merchant_signed(seen)
    assert "VIP 月卡".encode() in seen.body  # UTF-8, no \\u escapes
    sent = json.loads(seen.body)
    assert (sent["mchid"], sent["appid"], sent["out_trade_no"]) == (
        VECTORS["mchid"],
        VECTORS["appid"],
        trade_no,
    )
    assert seen.headers["Wechatpay-Serial"] == VECTORS["wechatpay_public_key_id"]


def test_query_signs_the_path_with_its_query_string(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    trade_no = out_trade_no()
    gateway.default = Reply(body={"out_trade_no": trade_no, "trade_state": "NOTPAY"})
    assert make_client().query_by_out_trade_no(trade_no)["trade_state"] == "NOTPAY"
    [seen] = gateway.seen
    assert seen.target == f"/v3/pay/transactions/out-trade-no/{trade_no}?mchid={VECTORS['mchid']}"
    assert seen.body == b""
    assert_merchant_signed(seen)


def test_other_operations_hit_their_endpoints(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    client = make_client()
    gateway.script.extend(
        [Reply(status=204), Reply(body={"status": "PROCESSING"}), Reply(body={"status": "SUCCESS"})]
    )
    gateway.script.append(Reply(body={"trade_state": "SUCCESS"}))
    trade_no, refund_no = out_trade_no(), f"R{uuid.uuid4().hex[:20]}"
    assert client.close(trade_no) is None
    refund_body = {
        "out_trade_no": trade_no,
        "out_refund_no": refund_no,
        "amount": {"refund": 1, "total": 1, "currency": "CNY"},
    }
    assert client.refund(refund_body) == {"status": "PROCESSING"}
    assert client.query_refund(refund_no) == {"status": "SUCCESS"}
    assert client.query_by_transaction_id("4200002421202501017102519265") == {"trade_state": "SUCCESS"}
    targets = [(s.method, s.target) for s in gateway.seen]
    assert targets == [
        ("POST", f"/v3/pay/transactions/out-trade-no/{trade_no}/close"),
        ("POST", "/v3/refund/domestic/refunds"),
        ("GET", f"/v3/refund/domestic/refunds/{refund_no}"),
        ("GET", f"/v3/pay/transactions/id/4200002421202501017102519265?mchid={VECTORS['mchid']}"),
    ]
    assert json.loads(gateway.seen[0].body) == {"mchid": VECTORS["mchid"]}
    assert "mchid" not in json.loads(gateway.seen[1].body)
    for seen in gateway.seen:
        assert_merchant_signed(seen)


def test_path_parameters_are_percent_encoded_and_signed_as_sent(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.default = Reply(body={"trade_state": "NOTPAY"})
    make_client().query_by_out_trade_no("T-1|2*3_x")
    [seen] = gateway.seen
    assert seen.target.startswith("/v3/pay/transactions/out-trade-no/T-1%7C2%2A3_x?")
    assert_merchant_signed(seen)


def test_pay_params_are_signed_with_the_merchant_key(make_client: Callable[..., WeChatPayClient]) -> None:
    client = make_client()
    jsapi = client.jsapi_pay_params("wx0112000019552265")
    app = client.app_pay_params("wx0112000019552265")
    for params, fourth, signature in (
        (jsapi, "prepay_id=wx0112000019552265", jsapi["pay_sign"]),
        (app, "wx0112000019552265", app["sign"]),
    ):
        message = f"{params['app_id']}\n{params['time_stamp']}\n{params['nonce_str']}\n{fourth}\n".encode()
        MERCHANT_PUBLIC.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    assert jsapi["package"] == "prepay_id=wx0112000019552265"
    assert app["package"] == "Sign=WXPay"
    assert app["partner_id"] == VECTORS["mchid"]


# --- retries --------------------------------------------------------------------------------------


def test_retries_5xx_and_429_with_identical_body_bytes(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.script.extend([error(500, "SYSTEM_ERROR"), error(429, "FREQUENCY_LIMITED")])
    gateway.default = Reply(body={"status": "PROCESSING"})
    refund_body = {
        "out_trade_no": out_trade_no(),
        "out_refund_no": "R1",
        "amount": {"refund": 1, "total": 1, "currency": "CNY"},
    }
    assert make_client().refund(refund_body) == {"status": "PROCESSING"}
    assert len(gateway.seen) == 3
    assert len({s.body for s in gateway.seen}) == 1
    nonces = {assert_merchant_signed(s)["nonce_str"] for s in gateway.seen}
    assert len(nonces) == 3, "every attempt is re-signed with a fresh nonce"


def test_stops_at_max_attempts(gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]) -> None:
    gateway.default = error(503, "SERVICE_UNAVAILABLE")
    with pytest.raises(ProviderUnavailableError) as caught:
        make_client(max_attempts=4).query_by_out_trade_no(out_trade_no())
    assert len(gateway.seen) == 4
    assert caught.value.metadata["provider_code"] == "SERVICE_UNAVAILABLE"
    assert caught.value.metadata["http_status"] == "503"


def test_retries_a_timed_out_attempt(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.script.extend([Reply(hang=True), Reply(hang=True)])
    gateway.default = Reply(body={"prepay_id": "wx1"})
    client = make_client(timeout=3.0, attempt_timeout=0.2)
    assert (
        client.prepay("app", {"out_trade_no": out_trade_no(), "amount": {"total": 1}})["prepay_id"] == "wx1"
    )
    assert len(gateway.seen) == 3
    assert len({s.body for s in gateway.seen}) == 1


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (error(404, "ORDERNOTEXIST", "订单不存在"), "ORDER_NOT_EXIST"),
        (error(404, "ORDER_NOT_EXIST", "订单不存在"), "ORDER_NOT_EXIST"),
        (error(400, "ORDERPAID", "订单已支付"), "ORDERPAID"),
        (error(400, "INVALID_REQUEST", "201 商户订单号重复"), "INVALID_REQUEST"),
        (error(500, "OPENID_MISMATCH"), "OPENID_MISMATCH"),
        (Reply(status=403, body=None), "HTTP_403"),
    ],
)
def test_business_errors_are_never_retried(
    reply: Reply, code: str, gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.default = reply
    with pytest.raises(ProviderRejectedError) as caught:
        make_client().query_by_out_trade_no(out_trade_no())
    assert len(gateway.seen) == 1
    assert caught.value.metadata["provider_code"] == code
    assert caught.value.metadata["http_status"] == str(reply.status)
    assert caught.value.metadata["provider_message"] == ((reply.body or {}).get("message") or "")


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=401, body={"code": "SIGN_ERROR", "message": "签名错误"}, signing="none"),
        Reply(status=404, body={"code": "ORDER_NOT_EXIST", "message": "订单不存在"}, signing="none"),
        Reply(status=400, body={"code": "ORDER_CLOSED", "message": "订单已关闭"}, signing="none"),
        Reply(status=400, body={"code": "ORDER_CLOSED", "message": "订单已关闭"}, signing="forged"),
    ],
)
def test_an_unsigned_or_forged_error_is_never_acted_on(
    reply: Reply, gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.default = reply
    with pytest.raises(ProviderUnavailableError) as caught:
        make_client(max_attempts=2).close(out_trade_no())
    assert caught.value.metadata["provider_code"] == "INVALID_RESPONSE_SIGNATURE"
    assert caught.value.metadata["claimed_code"] == (reply.body or {})["code"]
    assert len(gateway.seen) == 2  # a failed exchange: retried like a 5xx


def test_connection_refused_is_unavailable(make_client: Callable[..., WeChatPayClient]) -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        make_client(base_url="http://127.0.0.1:9").query_refund("R1")
    assert caught.value.metadata["provider_code"] == "CONNECTION_ERROR"


# --- response signatures --------------------------------------------------------------------------


@pytest.mark.parametrize("signing", ["forged", "none"])
def test_unverifiable_2xx_is_rejected_and_not_retried(
    signing: Signing, gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.default = Reply(body={"trade_state": "SUCCESS"}, signing=signing)
    with pytest.raises(ProviderUnavailableError) as caught:
        make_client().query_by_out_trade_no(out_trade_no())
    assert caught.value.metadata["provider_code"] == "INVALID_RESPONSE_SIGNATURE"
    assert len(gateway.seen) == 1


def test_forged_204_is_rejected(gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]) -> None:
    gateway.default = Reply(status=204, signing="forged")
    with pytest.raises(ProviderUnavailableError, match="signature"):
        make_client().close(out_trade_no())


def test_signed_error_with_a_bad_signature_is_not_trusted(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.default = Reply(status=400, body={"code": "ORDERPAID", "message": "订单已支付"}, signing="forged")
    with pytest.raises(ProviderUnavailableError) as caught:
        make_client().close(out_trade_no())
    assert caught.value.metadata["verification"] == "bad_signature"


def test_response_signed_by_an_unknown_serial_is_rejected(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.default = Reply(body={"ok": True}, serial="PUB_KEY_ID_999")
    with pytest.raises(ProviderUnavailableError) as caught:
        make_client().query_refund("R1")
    assert caught.value.metadata["verification"] == "unknown_serial"


def test_stale_response_is_rejected(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.default = Reply(body={"ok": True})
    with pytest.raises(ProviderUnavailableError) as caught:
        make_client(clock=lambda: time.time() + 600).query_refund("R1")
    assert caught.value.metadata["verification"] == "stale"


def test_certificate_mode_downloads_certs_lazily(
    gateway: FakeGateway, tmp_path: Path, make_client: Callable[..., WeChatPayClient]
) -> None:
    certificates = {
        "data": [
            {
                "serial_no": CERT_SERIAL,
                "effective_time": "2024-01-01T00:00:00+08:00",
                "expire_time": "2099-01-01T00:00:00+08:00",
                "encrypt_certificate": {
                    "algorithm": "AEAD_AES_256_GCM",
                    "nonce": CERT_VECTOR["nonce"],
                    "associated_data": "certificate",
                    "ciphertext": CERT_VECTOR["ciphertext"],
                },
            }
        ]
    }

    def route(seen: Seen) -> Reply:
        if seen.target == "/v3/certificates":
            return Reply(body=certificates, serial=CERT_SERIAL)
        return Reply(body={"trade_state": "NOTPAY"}, serial=CERT_SERIAL)

    gateway.route = route
    bundle = tmp_path / "cert-mode"
    bundle.mkdir()
    client = make_client(credentials=load_credentials(write_bundle(bundle, cert_mode=True)), sign_mode="cert")
    assert client.query_by_out_trade_no(out_trade_no()) == {"trade_state": "NOTPAY"}
    assert client.query_by_out_trade_no(out_trade_no()) == {"trade_state": "NOTPAY"}
    assert [s.target.split("?")[0].rsplit("/", 1)[0] for s in gateway.seen] == [
        "/v3/pay/transactions/out-trade-no",
        "/v3",
        "/v3/pay/transactions/out-trade-no",
    ]
    [downloaded] = client.download_certificates()
    assert downloaded.serial_no == CERT_SERIAL


# --- timeouts and the breaker ---------------------------------------------------------------------


def test_hung_gateway_fails_within_the_total_timeout(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.default = Reply(hang=True)
    client = make_client(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError) as caught:
        client.query_by_out_trade_no(out_trade_no())
    # Nothing but the total timeout ends this call (the gateway never answers); the bound is wide so a
    # loaded box cannot fail it, and still far below any other timeout the client has.
    assert time.monotonic() - started < 5.0
    assert caught.value.metadata["provider_code"] == "TIMEOUT"


def _fail_until_open(client: WeChatPayClient, failures: int) -> None:
    for _ in range(failures):
        with pytest.raises(ProviderUnavailableError):
            client.query_refund("R1")


def _call_when_half_open(client: WeChatPayClient, within_s: float) -> dict[str, Any]:
    """Poll until the reset timeout lets a probe through; while open, calls fail fast."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return client.query_refund("R1")
        except ProviderUnavailableError as exc:
            if exc.metadata.get("circuit") != "open" or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_breaker_opens_fails_fast_and_closes_after_a_good_probe(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    client = make_client(max_attempts=1, breaker_fail_max=3, breaker_reset_s=0.3)
    gateway.default = error(500, "SYSTEM_ERROR")
    _fail_until_open(client, 3)
    assert client.breaker_state == "open"
    requests_before = len(gateway.seen)
    with pytest.raises(ProviderUnavailableError) as caught:
        client.query_refund("R1")
    assert caught.value.metadata["circuit"] == "open"
    assert len(gateway.seen) == requests_before, "an open circuit fails fast: it makes no request"
    gateway.default = Reply(body={"status": "SUCCESS"})
    assert _call_when_half_open(client, within_s=3) == {"status": "SUCCESS"}
    assert client.breaker_state == "closed"


def test_failed_probe_reopens_the_breaker(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    client = make_client(max_attempts=1, breaker_fail_max=2, breaker_reset_s=0.2)
    gateway.default = error(502, "SERVICE_UNAVAILABLE")
    _fail_until_open(client, 2)
    with pytest.raises(ProviderUnavailableError) as caught:
        _call_when_half_open(client, within_s=3)
    assert caught.value.metadata["provider_code"] == "SERVICE_UNAVAILABLE"
    assert client.breaker_state == "open"


def test_retries_inside_one_call_count_towards_the_breaker(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    client = make_client(max_attempts=5, breaker_fail_max=2, breaker_reset_s=10)
    gateway.default = error(500, "SYSTEM_ERROR")
    with pytest.raises(ProviderUnavailableError) as caught:
        client.query_refund("R1")
    assert caught.value.metadata["circuit"] == "open"
    assert len(gateway.seen) == 2


def test_business_rejections_do_not_open_the_breaker(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    client = make_client(max_attempts=1, breaker_fail_max=2)
    gateway.default = error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
    for _ in range(5):
        with pytest.raises(ProviderRejectedError):
            client.query_refund("R1")
    assert client.breaker_state == "closed"


def test_concurrent_calls_are_not_serialised(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    gateway.script.extend([Reply(hang=True)] * 8)
    gateway.default = Reply(body={"status": "SUCCESS"})
    client = make_client(timeout=5.0, attempt_timeout=0.5, max_attempts=2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: client.query_refund("R1"), range(8)))
    # The eight hung replies go to the first eight requests. In parallel those are the eight calls' first
    # attempts and every retry succeeds; serialised, one call would meet two hangs and fail.
    assert results == [{"status": "SUCCESS"}] * 8


def test_observer_sees_every_operation(
    gateway: FakeGateway, make_client: Callable[..., WeChatPayClient]
) -> None:
    events: list[tuple[str, str, float]] = []
    client = make_client(observer=lambda op, outcome, seconds: events.append((op, outcome, seconds)))
    gateway.script.extend(
        [Reply(body={"prepay_id": "wx1"}), error(400, "PARAM_ERROR"), Reply(signing="forged", body={})]
    )
    client.prepay("native", {"out_trade_no": out_trade_no()})
    with pytest.raises(ProviderRejectedError):
        client.query_refund("R1")
    with pytest.raises(ProviderUnavailableError):
        client.query_refund("R1")
    assert [(op, outcome) for op, outcome, _ in events] == [
        ("prepay_native", "ok"),
        ("query_refund", "rejected"),
        ("query_refund", "bad_signature"),
    ]
    assert all(seconds >= 0 for _, _, seconds in events)


def test_from_settings_uses_the_configured_gateway(
    gateway: FakeGateway, credentials: MerchantCredentials
) -> None:
    settings = Settings().with_overrides(
        wxpay_base_url=gateway.url, wxpay_timeout_s=1.0, wxpay_max_attempts=1
    )
    gateway.default = Reply(body={"status": "SUCCESS"})
    with from_settings(settings, credentials) as client:
        assert client.query_refund("R1") == {"status": "SUCCESS"}
        assert client.breaker_state == "closed"
