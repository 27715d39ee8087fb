"""The merchant's WeChat Pay APIv3 client: one method per API operation, responses verified by its key store.

One instance is shared by every gRPC worker thread and job: the transport (pooled `httpx.Client`, breaker)
and the certificate cache are thread-safe. Works against the sandbox or `https://api.mch.weixin.qq.com`
by `base_url` alone. Signing, retries and the breaker are server.wxpay.transport's.

Failure contract: `ProviderRejectedError` (a 4xx business answer; never retried) or
`ProviderUnavailableError` (5xx, 429, timeout, connection error, open circuit, or a response whose
signature does not verify). Either way the outcome at WeChat may be unknown only for the latter, and
callers repair it by querying with the same `out_trade_no` / `out_refund_no`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from cryptography import x509

from server.config import Settings
from server.domain.errors import ProviderUnavailableError
from server.wxpay.certificates import KeyStore, PlatformCertificate
from server.wxpay.channels import endpoint_of, prepay_path
from server.wxpay.credentials import MerchantCredentials, certificate_serial
from server.wxpay.crypto import decrypt_resource, decrypt_sensitive, encrypt_sensitive
from server.wxpay.errors import NotificationRejected
from server.wxpay.provider_errors import unavailable
from server.wxpay.signing import VerifierKeys, app_pay_params, jsapi_pay_params, new_nonce
from server.wxpay.transport import Observer, Response, SignedTransport, SignMode, Verify, no_observer


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
        observer: Observer = no_observer,
        max_connections: int = 64,
    ) -> None:
        if sign_mode == "pubkey" and credentials.wechatpay_public_key is None:
            raise ValueError("sign_mode 'pubkey' needs wechatpay_public_key.pem in the credentials bundle")
        self._credentials = credentials
        self._clock = clock
        self._transport = SignedTransport(
            credentials,
            base_url,
            connect_timeout=connect_timeout,
            timeout=timeout,
            attempt_timeout=attempt_timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            breaker_fail_max=breaker_fail_max,
            breaker_reset_s=breaker_reset_s,
            clock=clock,
            sign_mode=sign_mode,
            observer=observer,
            max_connections=max_connections,
        )
        # Every key by serial, shared with the notify sidecar; downloads certificates through this client.
        self._key_store = KeyStore(credentials, fetch=self.download_certificates, clock=clock)

    # --- lifecycle and introspection ---------------------------------------------------------------

    def shutdown(self) -> None:
        """Close pooled connections. (`close()` is WeChat's close-order call.)"""
        self._transport.shutdown()

    def __enter__(self) -> WeChatPayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def breaker_state(self) -> str:
        return self._transport.breaker_state

    @property
    def credentials(self) -> MerchantCredentials:
        return self._credentials

    @property
    def key_store(self) -> KeyStore:
        return self._key_store

    # --- API operations ----------------------------------------------------------------------------

    def prepay(self, channel: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a prepay order; returns `{"prepay_id"}` (jsapi/app), `{"h5_url"}` or `{"code_url"}`.
        `channel`: one of ours or its endpoint, any case (server.wxpay.channels)."""
        endpoint = endpoint_of(channel)
        if endpoint is None:
            raise ValueError(f"unknown prepay channel {channel!r}")
        payload = {"appid": self._credentials.appid, **body, "mchid": self._credentials.mchid}
        return self._call(f"prepay_{endpoint}", "POST", prepay_path(endpoint), payload)

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
        key = self._key_store.keys().get(self._transport.preferred_serial)
        if key is None:
            raise ProviderUnavailableError(
                "no WeChat Pay key to encrypt with", metadata={"provider_code": "NO_ENCRYPTION_KEY"}
            )
        return encrypt_sensitive(key, plaintext)

    def security_echo(self, message: str) -> tuple[str, str, str]:
        """`POST /v3/security/echo`, WeChat's self-test (2026-04): our signature is accepted, the answer
        verifies with the key we name, `message` sealed to that key opens there, and the echo sealed to
        our key opens here. Returns (the serial used, the echoed message, the one we decrypted)."""
        sealed = self.encrypt_sensitive(message)
        body = {"echo_message": message, "encrypted_echo_message": sealed}
        answer = self._call("security_echo", "POST", "/v3/security/echo", body)
        opened = decrypt_sensitive(
            self._credentials.merchant_private_key, str(answer.get("encrypted_echo_message"))
        )
        return self._transport.preferred_serial, str(answer.get("echo_message")), opened

    def download_certificates(self) -> list[PlatformCertificate]:
        """GET /v3/certificates, decrypt each entry, and verify the response with the certs it carries."""
        decoded: list[PlatformCertificate] = []

        def verify(response: Response) -> None:
            if response.status < 300:  # a signed 404 (public-key-only merchant) carries no certificates
                decoded.extend(self._decrypt_certificates(response.body))
            extra = VerifierKeys({cert.serial_no: cert.public_key for cert in decoded})
            self._verify_signature(response, extra=extra, refresh=False)

        self._call("download_certificates", "GET", "/v3/certificates", verify=verify)
        return decoded

    def signed_call(
        self, operation: str, method: str, path: str, payload: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Any APIv3 call answered with signed JSON (server/wxpay/partner.py: the 服务商 endpoints)."""
        return self._call(operation, method, path, payload)

    def signed_get(self, operation: str, path: str) -> dict[str, Any]:
        """A GET answered with signed JSON (server/wxpay/bills.py applies for bills through it)."""
        return self._call(operation, "GET", path)

    def download(self, url: str, max_bytes: int, timeout_s: float | None = None) -> bytes:
        """GET a bill file, signed; its bytes are checked by the caller (server/wxpay/bills.py)."""
        return self._transport.download(url, max_bytes, timeout_s)

    def jsapi_pay_params(self, prepay_id: str, appid: str | None = None) -> dict[str, str]:
        """`appid`: the app the payer is in (several apps per account, issue 18); default the bundle's."""
        return jsapi_pay_params(
            appid=appid or self._credentials.appid,
            prepay_id=prepay_id,
            private_key=self._credentials.merchant_private_key,
            timestamp=int(self._clock()),
            nonce=new_nonce(),
        )

    def app_pay_params(
        self, prepay_id: str, appid: str | None = None, partner_id: str | None = None
    ) -> dict[str, str]:
        """`partner_id`: the OpenSDK's partnerId, the sub-merchant's number in partner mode."""
        return app_pay_params(
            appid=appid or self._credentials.appid,
            mchid=partner_id or self._credentials.mchid,
            prepay_id=prepay_id,
            private_key=self._credentials.merchant_private_key,
            timestamp=int(self._clock()),
            nonce=new_nonce(),
        )

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
        verify: Verify | None = None,
    ) -> dict[str, Any]:
        return self._transport.call(operation, method, path, payload, verify=verify or self._verify_signature)

    # --- response verification and certificates ---------------------------------------------------

    def _verify_signature(
        self, response: Response, *, extra: VerifierKeys | None = None, refresh: bool = True
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
    settings: Settings,
    credentials: MerchantCredentials,
    *,
    observer: Observer = no_observer,
    sign_mode: SignMode | None = None,
) -> WeChatPayClient:
    """The client as §7's settings configure it; public-key mode whenever the bundle has the key, unless
    `sign_mode` (an account's key_mode) says otherwise."""
    return WeChatPayClient(
        credentials,
        settings.wxpay_base_url,
        connect_timeout=settings.wxpay_connect_timeout_s,
        timeout=settings.wxpay_timeout_s,
        max_attempts=settings.wxpay_max_attempts,
        backoff_base=settings.wxpay_backoff_base_s,
        breaker_fail_max=settings.wxpay_breaker_fail_max,
        breaker_reset_s=settings.wxpay_breaker_reset_s,
        sign_mode=sign_mode or ("pubkey" if credentials.wechatpay_public_key is not None else "cert"),
        observer=observer,
    )


def _segment(value: str) -> str:
    return quote(value, safe="")


def _forged(response: Response, outcome: str) -> ProviderUnavailableError:
    return unavailable(
        "WeChat Pay response signature did not verify",
        provider_code="INVALID_RESPONSE_SIGNATURE",
        http_status=response.status,
        verification=outcome,
    )
