"""Signed HTTP to WeChat Pay APIv3: one operation is observed, retried within its deadline, guarded by the
breaker, sent signed, read within a size cap, and judged (a response is verified before it is believed).

server.wxpay.client builds the operations on it and supplies the response verification (the key store).
Failure contract: `ProviderRejectedError` (a signed 4xx business answer; never retried) or
`ProviderUnavailableError` (5xx, 429, timeout, connection error, open circuit, an unsigned or forged answer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from server.domain.errors import DomainError, ProviderRejectedError, ProviderUnavailableError
from server.wxpay.breaker import ProviderBreaker
from server.wxpay.credentials import MerchantCredentials
from server.wxpay.provider_errors import (
    error_for_status,
    is_retryable_status,
    json_object,
    outcome_label,
    parse_error_body,
    unavailable,
)
from server.wxpay.signing import HEADER_SERIAL, authorization_header, new_nonce

SignMode = Literal["pubkey", "cert"]
Observer = Callable[[str, str, float], None]
MAX_RESPONSE_BYTES = 1 << 20
USER_AGENT = f"orderpay-wxpay/0.1 httpx/{httpx.__version__}"


def no_observer(operation: str, outcome: str, seconds: float) -> None:
    """Default observer: metrics are optional here."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def request_id(self) -> str:
        return str(self.headers.get("Request-ID", ""))


Verify = Callable[[Response], None]  # raises ProviderUnavailableError when the response is not WeChat's


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


class SignedTransport:
    """One merchant's signed requests to one gateway; shared by every thread (httpx and the breaker are)."""

    def __init__(
        self,
        credentials: MerchantCredentials,
        base_url: str,
        *,
        connect_timeout: float,
        timeout: float,
        attempt_timeout: float | None,
        max_attempts: int,
        backoff_base: float,
        breaker_fail_max: int,
        breaker_reset_s: float,
        clock: Callable[[], float],
        sign_mode: SignMode,
        observer: Observer,
        max_connections: int,
    ) -> None:
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
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            follow_redirects=False,
        )

    def shutdown(self) -> None:
        self._http.close()

    @property
    def breaker_state(self) -> str:
        return self._breaker.state

    @property
    def preferred_serial(self) -> str:
        """The WeChat Pay key we hold and ask responses to be signed with (research §7, migration rules)."""
        if self._sign_mode == "pubkey":
            return self._credentials.wechatpay_public_key_id
        return self._credentials.platform_cert_serial_no

    # --- one operation: observe, retry, parse -------------------------------------------------------

    def call(
        self, operation: str, method: str, path: str, payload: Mapping[str, Any] | None, *, verify: Verify
    ) -> dict[str, Any]:
        content = b"" if payload is None else _encode(payload)
        started = time.monotonic()
        outcome = "error"
        try:
            response = self._with_retries(method, path, content, started + self._timeout, verify)
            result = json_object(response.status, response.body)
        except DomainError as exc:
            outcome = outcome_label(exc)
            raise
        else:
            outcome = "ok"
            return result
        finally:
            self._observer(operation, outcome, time.monotonic() - started)

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

    def _with_retries(
        self, method: str, path: str, content: bytes, deadline: float, verify: Verify
    ) -> Response:
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

    def _attempt(self, method: str, path: str, content: bytes, deadline: float, verify: Verify) -> Response:
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

    def _judge(self, response: Response, verify: Verify) -> Response:
        code, _ = parse_error_body(response.status, response.body)
        if response.status >= 300 and is_retryable_status(response.status, code):
            error = error_for_status(response.status, response.body, request_id=response.request_id)
            raise _Transient(ProviderUnavailableError(error.message, metadata=error.metadata))
        if 200 <= response.status < 300:
            verify(response)
            return response
        error = error_for_status(response.status, response.body, request_id=response.request_id)
        # An error is acted on (close, repair, ABNORMAL) only when WeChat Pay signed it. An unsigned one
        # (even a 401 SIGN_ERROR) may come from anyone on the path: a failed exchange, retried.
        try:
            verify(response)
        except ProviderUnavailableError as unverified:
            metadata = {**unverified.metadata, "claimed_code": error.metadata.get("provider_code", "")}
            raise _Transient(ProviderUnavailableError(unverified.message, metadata=metadata)) from None
        raise error

    # --- one attempt on the wire ---------------------------------------------------------------------

    def _send(self, method: str, path: str, content: bytes, deadline: float) -> Response:
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

    def _exchange(self, request: httpx.Request, deadline: float) -> Response:
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
        return Response(response.status_code, response.headers, b"".join(chunks))

    def _request_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        serial = self.preferred_serial
        if serial:
            # Asks WeChat to sign the response with the key we hold (research §7, migration rules).
            headers[HEADER_SERIAL] = serial
        return headers

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


def _encode(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes signed and sent: compact JSON, UTF-8, no \\u escapes."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
