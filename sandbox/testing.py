"""Helpers for driving the sandbox from tests and tools: a signed merchant-side caller and a
notification receiver that records what arrives and answers as told.

Both are real HTTP over loopback; nothing is mocked.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.app import RunningServer, serve_in_thread
from sandbox.keys import signing
from sandbox.keys.bundle import Credentials


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class MerchantCaller:
    """Signs requests with the merchant key exactly as the protocol says, over the exact bytes sent."""

    def __init__(self, base_url: str, credentials: Credentials, *, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self.credentials = credentials
        self._http = httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        target: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        authorization: str | None = None,
        timestamp: int | None = None,
    ) -> Answer:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        creds = self.credentials
        auth = authorization or signing.build_authorization(
            creds.merchant_private_key,
            mchid=creds.mchid,
            serial_no=creds.merchant_serial_no,
            method=method,
            target=target,
            body=data,
            timestamp=stamp,
            nonce=secrets.token_hex(16).upper(),
        )
        sent = {"Authorization": auth, "Content-Type": "application/json", "Accept": "application/json"}
        sent.update(headers or {})
        response = self._http.request(method, target, content=data, headers=sent)
        return Answer(response.status_code, dict(response.headers), response.content)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, f"/sandbox/v1/{path}", json=body)
        response.raise_for_status()
        return response.json()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived (monotonic clock)

    @property
    def event_type(self) -> str:
        value: str = json.loads(self.body)["event_type"]
        return value


@dataclass
class NotificationReceiver:
    """A merchant notify endpoint on 127.0.0.1:0 that records every POST.

    `answer(received, count_so_far)` decides the HTTP status (default 204); set it to fail N times.
    """

    answer: Callable[[Received, int], int] = field(default=lambda _received, _count: 204)
    received: list[Received] = field(default_factory=list)
    _server: RunningServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> NotificationReceiver:
        app = web.Application()
        app.router.add_post("/notify", self._handle)
        app.router.add_post("/refund-notify", self._handle)
        self._server = serve_in_thread(app)
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("receiver not started")
        return f"{self._server.base_url}/notify"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        item = Received(dict(request.headers), await request.read())
        with self._lock:
            self.received.append(item)
            count = len(self.received)
        status = self.answer(item, count)
        if 200 <= status < 300:
            return web.Response(status=status)
        return web.json_response({"code": "FAIL", "message": "失败"}, status=status)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0) -> list[Received]:
        """Poll (never sleep-and-hope) until `predicate(received)` holds; raise on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                snapshot = list(self.received)
            if predicate(snapshot):
                return snapshot
            time.sleep(0.01)
        raise TimeoutError(f"receiver condition not met in {timeout}s; got {len(self.received)} requests")


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll `condition` until it returns something truthy; return it, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s")


def prepay_body(credentials: Credentials, out_trade_no: str, notify_url: str, **extra: Any) -> dict[str, Any]:
    """A valid JSAPI prepay body for this bundle's merchant; `extra` overrides or adds fields."""
    body: dict[str, Any] = {
        "appid": credentials.appid,
        "mchid": credentials.mchid,
        "description": "VIP 月卡",
        "out_trade_no": out_trade_no,
        "notify_url": notify_url,
        "amount": {"total": 100, "currency": "CNY"},
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    }
    body.update(extra)
    return body


def key_for_serial(
    credentials: Credentials, serial: str, extra_pems: tuple[str, ...] = ()
) -> rsa.RSAPublicKey:
    """The WeChat Pay key a verifier should use for `Wechatpay-Serial: serial`: the public key for the
    public-key id, else the platform certificate (the bundle's, or one of `extra_pems`) with that serial."""
    if serial == credentials.wechatpay_public_key_id:
        return credentials.wechatpay_public_key
    for pem in (credentials.platform_cert_pem, *extra_pems):
        cert = x509.load_pem_x509_certificate(pem.encode())
        key = cert.public_key()
        if f"{cert.serial_number:X}" == serial.upper() and isinstance(key, rsa.RSAPublicKey):
            return key
    raise KeyError(f"no key for serial {serial}")


def signature_verifies(headers: Any, body: bytes, key: rsa.RSAPublicKey) -> bool:
    """A signed answer or notification verifies over its raw body with `key` (headers: any case)."""
    lower = {name.lower(): value for name, value in headers.items()}
    message = signing.response_message(lower["wechatpay-timestamp"], lower["wechatpay-nonce"], body)
    return signing.rsa_verify(key, message, lower["wechatpay-signature"])
