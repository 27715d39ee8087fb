"""The merchant's WeChat Pay APIv3 client: signed requests, verified responses, safe retries.

One instance is shared by every gRPC worker thread and job: the pooled `httpx.Client`, the breaker and
the certificate cache are all thread-safe. Works against the sandbox or `https://api.mch.weixin.qq.com`
by `base_url` alone.

Failure contract: `ProviderRejectedError` (a 4xx business answer; never retried) or
`ProviderUnavailableError` (5xx, 429, timeout, connection error, open circuit, or a response whose
signature does not verify). Either way the outcome at WeChat may be unknown only for the latter, and
callers repair it by querying with the same `out_trade_no` / `out_refund_no`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
from cryptography import x509
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from server.config import Settings
from server.domain.errors import DomainError, ProviderRejectedError, ProviderUnavailableError
from server.wxpay.breaker import ProviderBreaker
from server.wxpay.certificates import KeyStore, PlatformCertificate
from server.wxpay.credentials import MerchantCredentials, certificate_serial
from server.wxpay.crypto import decrypt_resource, encrypt_sensitive
from server.wxpay.errors import NotificationRejected
from server.wxpay.provider_errors import error_for_status, is_retryable_status, parse_error_body, unavailable
from server.wxpay.signing import (
    HEADER_SERIAL,
    VerifierKeys,
    app_pay_params,
    authorization_header,
    jsapi_pay_params,
    new_nonce,
)

SignMode = Literal["pubkey", "cert"]
Observer = Callable[[str, str, float], None]
PREPAY_CHANNELS: Mapping[str, str] = {
    "jsapi": "jsapi",
    "miniprogram": "jsapi",  # mini-program payments use the JSAPI endpoint (research §11)
    "app": "app",
    "h5": "h5",
    "native": "native",
}
MAX_RESPONSE_BYTES = 1 << 20
USER_AGENT = f"orderpay-wxpay/0.1 httpx/{httpx.__version__}"


def _no_observer(operation: str, outcome: str, seconds: float) -> None:
    """Default observer: metrics are optional here."""


@dataclass(frozen=True)
class _Response:
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def request_id(self) -> str:
        return str(self.headers.get("Request-ID", ""))


class _Transient(Exception):  # noqa: N818 - internal retry signal, never escapes this module
    """A failure worth retrying with the same body; carries the error to raise if retries run out."""

    def __init__(self, error: ProviderUnavailableError) -> None:
        super().__init__(error.message)
        self.error = error


class _StopAtDeadline(stop_base):
    """Stop retrying when the next backoff would end past the operation's total deadline."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep >= self._deadline


class WeChatPayClient:
    def __init__(
        self,
        credentials: MerchantCredentials,
        base_url: str,
        *,
        connect_timeout: float = 2.0,
        timeout: float = 5.0,
        attempt_timeout: float | None = None,
        max_attempts: int = 3,
        backoff_base: float = 0.2,
        breaker_fail_max: int = 5,
        breaker_reset_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        sign_mode: SignMode = "pubkey",
        observer: Observer = _no_observer,
        max_connections: int = 64,
    ) -> None:
        if sign_mode == "pubkey" and credentials.wechatpay_public_key is None:
            raise ValueError("sign_mode 'pubkey' needs wechatpay_public_key.pem in the credentials bundle")
        self._credentials = credentials
        self._connect_timeout = connect_timeout
        self._timeout = timeout  # total budget per operation, retries and backoff included
        # Per-attempt cap; None lets one attempt use the whole remaining budget (a hang is then not retried).
        self._attempt_timeout = attempt_timeout
        self._max_attempts = max(1, max_attempts)
        self._backoff_base = backoff_base
        self._clock = clock
        self._sign_mode = sign_mode
        self._observer = observer
        self._breaker = ProviderBreaker(fail_max=breaker_fail_max, reset_s=breaker_reset_s)
        # Every key by serial, shared with the notify sidecar; downloads certificates through this client.
        self._key_store = KeyStore(credentials, fetch=self.download_certificates, clock=clock)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    # --- lifecycle and introspection ---------------------------------------------------------------

    def shutdown(self) -> None:
        """Close pooled connections. (`close()` is WeChat's close-order call.)"""
        self._http.close()

    def __enter__(self) -> WeChatPayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def breaker_state(self) -> str:
        return self._breaker.state

    @property
    def credentials(self) -> MerchantCredentials:
        return self._credentials

    @property
    def key_store(self) -> KeyStore:
        return self._key_store

    # --- API operations ----------------------------------------------------------------------------

    def prepay(self, channel: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a prepay order; returns `{"prepay_id"}` (jsapi/app), `{"h5_url"}` or `{"code_url"}`."""
        endpoint = PREPAY_CHANNELS.get(channel.lower())
        if endpoint is None:
            raise ValueError(f"unknown prepay channel {channel!r}")
        payload = {"appid": self._credentials.appid, **body, "mchid": self._credentials.mchid}
        return self._call(f"prepay_{endpoint}", "POST", f"/v3/pay/transactions/{endpoint}", payload)

    def query_by_out_trade_no(self, out_trade_no: str) -> dict[str, Any]:
        path = f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}?mchid={self._mchid_param}"
        return self._call("query_order", "GET", path)

    def query_by_transaction_id(self, transaction_id: str) -> dict[str, Any]:
        path = f"/v3/pay/transactions/id/{_segment(transaction_id)}?mchid={self._mchid_param}"
        return self._call("query_order", "GET", path)

    def close(self, out_trade_no: str) -> None:
        """Close an unpaid order at WeChat Pay (204). Closing a closed order again is harmless there."""
        path = f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}/close"
        self._call("close_order", "POST", path, {"mchid": self._credentials.mchid})

    def refund(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a refund; idempotent at WeChat on `out_refund_no` (direct merchants send no mchid)."""
        return self._call("refund", "POST", "/v3/refund/domestic/refunds", dict(body))

    def query_refund(self, out_refund_no: str) -> dict[str, Any]:
        return self._call("query_refund", "GET", f"/v3/refund/domestic/refunds/{_segment(out_refund_no)}")

    def apply_abnormal_refund(self, refund_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Route an ABNORMAL refund's money to the payer's card or the merchant's bank account."""
        path = f"/v3/refund/domestic/refunds/{_segment(refund_id)}/apply-abnormal-refund"
        return self._call("apply_abnormal_refund", "POST", path, dict(body))

    def encrypt_sensitive(self, plaintext: str) -> str:
        """RSA-OAEP under the WeChat Pay key named by our requests' `Wechatpay-Serial` header."""
        key = self._key_store.keys().get(self._preferred_serial())
        if key is None:
            raise ProviderUnavailableError(
                "no WeChat Pay key to encrypt with", metadata={"provider_code": "NO_ENCRYPTION_KEY"}
            )
        return encrypt_sensitive(key, plaintext)

    def download_certificates(self) -> list[PlatformCertificate]:
        """GET /v3/certificates, decrypt each entry, and verify the response with the certs it carries."""
        decoded: list[PlatformCertificate] = []

        def verify(response: _Response) -> None:
            if response.status < 300:  # a signed 404 (public-key-only merchant) carries no certificates
                decoded.extend(self._decrypt_certificates(response.body))
            extra = VerifierKeys({cert.serial_no: cert.public_key for cert in decoded})
            self._verify_signature(response, extra=extra, refresh=False)

        self._call("download_certificates", "GET", "/v3/certificates", verify=verify)
        return decoded

    def signed_get(self, operation: str, path: str) -> dict[str, Any]:
        """A GET answered with signed JSON (server/wxpay/bills.py applies for bills through it)."""
        return self._call(operation, "GET", path)

    def download(self, url: str, max_bytes: int) -> bytes:
        """GET a bill file. The request is signed; WeChat signs no answer on this path, so the caller
        checks the bytes against the hash it applied for. Only the URL's path and query are used: our
        Authorization never goes to a host other than the configured gateway."""
        path = httpx.URL(url).raw_path.decode()
        request = self._http.build_request(
            "GET", path, headers=self._request_headers(), timeout=httpx.Timeout(self._timeout)
        )
        request.headers["Authorization"] = self._authorization("GET", request.url.raw_path.decode(), b"")
        started, outcome = time.monotonic(), "error"
        try:
            response = self._http.send(request, stream=True)
            try:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes or time.monotonic() - started > self._timeout:
                        raise unavailable("bill download too large or too slow", provider_code="TOO_LARGE")
            finally:
                response.close()
            if response.status_code != 200:
                request_id = str(response.headers.get("Request-ID", ""))
                raise error_for_status(response.status_code, bytes(body), request_id=request_id)
            outcome = "ok"
            return bytes(body)
        except httpx.TransportError as exc:
            raise unavailable("WeChat Pay unreachable", provider_code="CONNECTION_ERROR") from exc
        finally:
            self._observer("download_bill", outcome, time.monotonic() - started)

    def jsapi_pay_params(self, prepay_id: str) -> dict[str, str]:
        return jsapi_pay_params(
            appid=self._credentials.appid,
            prepay_id=prepay_id,
            private_key=self._credentials.merchant_private_key,
            timestamp=int(self._clock()),
            nonce=new_nonce(),
        )

    def app_pay_params(self, prepay_id: str) -> dict[str, str]:
        return app_pay_params(
            appid=self._credentials.appid,
            mchid=self._credentials.mchid,
            prepay_id=prepay_id,
            private_key=self._credentials.merchant_private_key,
            timestamp=int(self._clock()),
            nonce=new_nonce(),
        )

    # --- one operation: observe, retry, parse -------------------------------------------------------

    @property
    def _mchid_param(self) -> str:
        return quote(self._credentials.mchid, safe="")

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        *,
        verify: Callable[[_Response], None] | None = None,
    ) -> dict[str, Any]:
        content = b"" if payload is None else _encode(payload)
        started = time.monotonic()
        outcome = "error"
        try:
            response = self._with_retries(method, path, content, started + self._timeout, verify)
            result = _json_body(response)
        except DomainError as exc:
            outcome = _outcome_label(exc)
            raise
        else:
            outcome = "ok"
            return result
        finally:
            self._observer(operation, outcome, time.monotonic() - started)

    def _with_retries(
        self,
        method: str,
        path: str,
        content: bytes,
        deadline: float,
        verify: Callable[[_Response], None] | None,
    ) -> _Response:
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts) | _StopAtDeadline(deadline),
            wait=wait_random_exponential(multiplier=self._backoff_base, max=max(self._timeout, 0.001)),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            # Same body bytes on every attempt; each attempt is re-signed with a new timestamp and nonce.
            return retrying(self._attempt, method, path, content, deadline, verify)
        except _Transient as exc:
            raise exc.error from exc.__cause__

    def _attempt(
        self,
        method: str,
        path: str,
        content: bytes,
        deadline: float,
        verify: Callable[[_Response], None] | None,
    ) -> _Response:
        if not self._breaker.admit():
            raise unavailable("WeChat Pay circuit is open", provider_code="CIRCUIT_OPEN", circuit="open")
        try:
            response = self._send(method, path, content, deadline)
            result = self._judge(response, verify)
        except (_Transient, ProviderUnavailableError):
            self._breaker.record_failure()
            raise
        except ProviderRejectedError:
            self._breaker.record_success()  # WeChat answered: it is up, the request was wrong
            raise
        except BaseException:
            self._breaker.release()
            raise
        self._breaker.record_success()
        return result

    def _judge(self, response: _Response, verify: Callable[[_Response], None] | None) -> _Response:
        code, _ = parse_error_body(response.status, response.body)
        if response.status >= 300 and is_retryable_status(response.status, code):
            error = error_for_status(response.status, response.body, request_id=response.request_id)
            raise _Transient(ProviderUnavailableError(error.message, metadata=error.metadata))
        if 200 <= response.status < 300:
            (verify or self._verify_signature)(response)
            return response
        error = error_for_status(response.status, response.body, request_id=response.request_id)
        # An error is acted on (close, repair, ABNORMAL) only when WeChat Pay signed it. An unsigned one
        # (even a 401 SIGN_ERROR) may come from anyone on the path: a failed exchange, retried.
        try:
            (verify or self._verify_signature)(response)
        except ProviderUnavailableError as unverified:
            metadata = {**unverified.metadata, "claimed_code": error.metadata.get("provider_code", "")}
            raise _Transient(ProviderUnavailableError(unverified.message, metadata=metadata)) from None
        raise error

    # --- transport ---------------------------------------------------------------------------------

    def _send(self, method: str, path: str, content: bytes, deadline: float) -> _Response:
        remaining = deadline - time.monotonic()
        if self._attempt_timeout is not None:
            remaining = min(remaining, self._attempt_timeout)
        if remaining <= 0:
            raise _Transient(unavailable("WeChat Pay call ran out of time", provider_code="TIMEOUT"))
        request = self._http.build_request(
            method,
            path,
            content=content or None,
            headers=self._request_headers(),
            timeout=httpx.Timeout(remaining, connect=min(self._connect_timeout, remaining)),
        )
        # Sign the request-target exactly as it goes on the wire (after httpx's URL normalisation).
        request.headers["Authorization"] = self._authorization(method, request.url.raw_path.decode(), content)
        try:
            return self._exchange(request, time.monotonic() + remaining)
        except httpx.TimeoutException as exc:
            raise _Transient(unavailable("WeChat Pay timed out", provider_code="TIMEOUT")) from exc
        except httpx.TransportError as exc:
            error = unavailable("WeChat Pay unreachable", provider_code="CONNECTION_ERROR")
            raise _Transient(error) from exc

    def _exchange(self, request: httpx.Request, deadline: float) -> _Response:
        response = self._http.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("total timeout exceeded while reading", request=request)
                if size > MAX_RESPONSE_BYTES:
                    raise _Transient(unavailable("WeChat Pay response too large", provider_code="TOO_LARGE"))
                chunks.append(chunk)
        finally:
            response.close()
        return _Response(response.status_code, response.headers, b"".join(chunks))

    def _request_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        serial = self._preferred_serial()
        if serial:
            # Asks WeChat to sign the response with the key we hold (research §7, migration rules).
            headers[HEADER_SERIAL] = serial
        return headers

    def _preferred_serial(self) -> str:
        if self._sign_mode == "pubkey":
            return self._credentials.wechatpay_public_key_id
        return self._credentials.platform_cert_serial_no

    def _authorization(self, method: str, target: str, content: bytes) -> str:
        return authorization_header(
            mchid=self._credentials.mchid,
            serial_no=self._credentials.merchant_serial_no,
            private_key=self._credentials.merchant_private_key,
            method=method,
            target=target,
            body=content,
            timestamp=int(self._clock()),
            nonce=new_nonce(),
        )

    # --- response verification and certificates ---------------------------------------------------

    def _verify_signature(
        self, response: _Response, *, extra: VerifierKeys | None = None, refresh: bool = True
    ) -> None:
        try:
            self._key_store.verify(
                response.headers, response.body, now=self._clock(), extra=extra, refresh=refresh
            )
        except NotificationRejected as exc:
            raise _forged(response, exc.outcome) from None

    def _decrypt_certificates(self, body: bytes) -> list[PlatformCertificate]:
        try:
            entries = json.loads(body)["data"]
            return [self._decrypt_certificate(entry) for entry in entries]
        except (ValueError, KeyError, TypeError, NotificationRejected) as exc:
            raise unavailable(
                "unusable /v3/certificates response", provider_code="MALFORMED_RESPONSE"
            ) from exc

    def _decrypt_certificate(self, entry: Mapping[str, Any]) -> PlatformCertificate:
        sealed = entry["encrypt_certificate"]
        pem = decrypt_resource(
            self._credentials.apiv3_key,
            nonce=sealed["nonce"],
            associated_data=sealed.get("associated_data") or "",
            ciphertext=sealed["ciphertext"],
        )
        certificate = x509.load_pem_x509_certificate(pem)
        if certificate_serial(certificate) != str(entry["serial_no"]).upper():
            raise ValueError("certificate serial does not match its entry")
        return PlatformCertificate(
            serial_no=certificate_serial(certificate),
            effective_time=str(entry.get("effective_time", "")),
            expire_time=str(entry.get("expire_time", "")),
            certificate=certificate,
        )


def from_settings(
    settings: Settings, credentials: MerchantCredentials, *, observer: Observer = _no_observer
) -> WeChatPayClient:
    """The client as §7's settings configure it; public-key mode whenever the bundle has the key."""
    return WeChatPayClient(
        credentials,
        settings.wxpay_base_url,
        connect_timeout=settings.wxpay_connect_timeout_s,
        timeout=settings.wxpay_timeout_s,
        max_attempts=settings.wxpay_max_attempts,
        backoff_base=settings.wxpay_backoff_base_s,
        breaker_fail_max=settings.wxpay_breaker_fail_max,
        breaker_reset_s=settings.wxpay_breaker_reset_s,
        sign_mode="pubkey" if credentials.wechatpay_public_key is not None else "cert",
        observer=observer,
    )


def _segment(value: str) -> str:
    return quote(value, safe="")


def _encode(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes signed and sent: compact JSON, UTF-8, no \\u escapes."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json_body(response: _Response) -> dict[str, Any]:
    if not response.body.strip():
        return {}
    try:
        parsed = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if not isinstance(parsed, dict):
        raise unavailable(
            "WeChat Pay sent a non-object body",
            provider_code="MALFORMED_RESPONSE",
            http_status=response.status,
        )
    return parsed


def _forged(response: _Response, outcome: str) -> ProviderUnavailableError:
    return unavailable(
        "WeChat Pay response signature did not verify",
        provider_code="INVALID_RESPONSE_SIGNATURE",
        http_status=response.status,
        verification=outcome,
    )


def _outcome_label(error: DomainError) -> str:
    if isinstance(error, ProviderRejectedError):
        return "rejected"
    if error.metadata.get("circuit") == "open":
        return "circuit_open"
    if error.metadata.get("provider_code") == "INVALID_RESPONSE_SIGNATURE":
        return "bad_signature"
    return "unavailable"
