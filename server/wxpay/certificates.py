"""The WeChat Pay keys orderpay verifies with, by serial: the public key and the platform certificates.

WeChat signs each response and notification with either the WeChat Pay public key (`Wechatpay-Serial:
PUB_KEY_ID_…`) or one of its platform certificates (the certificate's hex serial). During the switch
to the public key both arrive side by side, and during a certificate rotation two certificates do
(research beyond-parity §1.5). So one `KeyStore`, shared by the API client and the notify sidecar,
holds every key by serial; an unknown certificate serial triggers one rate-limited download of
`/v3/certificates` and one re-verification (as wechatpay-apache-httpclient#86 fixed #50); concurrent
verifiers wait for that download rather than fail. Certificates that expire within 10 days log a
warning and show in a metric; verifications are counted by key kind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from server.domain.errors import DomainError
from server.metrics import CERTIFICATE_EXPIRY, CERTIFICATES_EXPIRING, VERIFICATIONS
from server.wxpay.credentials import MerchantCredentials, certificate_serial
from server.wxpay.errors import NotificationRejected, UnknownSerialError
from server.wxpay.signing import (
    MAX_CLOCK_SKEW_S,
    VerifierKeys,
    read_signed_headers,
    verify_signed_message,
)

KeyKind = Literal["public_key", "certificate", "unknown"]
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
EXPIRY_WARNING = timedelta(days=10)  # WeChat lists the successor this long before expiry
REFRESH_MIN_INTERVAL_S = 60.0  # so forged serials cannot make us hammer /v3/certificates
EXPIRY_CHECK_INTERVAL_S = 3600.0

_NOTHING_TO_DO = "none: a newer certificate is already known"
_DOWNLOAD_SUCCESSOR = (
    "run `orderpay keys show` to download /v3/certificates and check that a successor is listed"
)

log = structlog.get_logger("orderpay.wxpay.keys")


@dataclass(frozen=True)
class PlatformCertificate:
    """One entry of `/v3/certificates`, decrypted."""

    serial_no: str
    effective_time: str
    expire_time: str
    certificate: x509.Certificate

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        key = self.certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError("platform certificate does not hold an RSA key")
        return key


@dataclass(frozen=True)
class KnownKey:
    """A key in use, as `orderpay keys show` lists it. Certificates carry their own X.509 validity."""

    serial: str
    kind: KeyKind
    source: str  # "bundle" (the credentials directory) | "downloaded" (/v3/certificates)
    public_key: rsa.RSAPublicKey
    not_before: datetime | None = None
    not_after: datetime | None = None

    def expires_within(self, now: datetime, window: timedelta) -> bool:
        return self.not_after is not None and self.not_after - now <= window


def _certificate_key(serial: str, cert: x509.Certificate, source: str) -> KnownKey:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("platform certificate does not hold an RSA key")
    return KnownKey(serial, "certificate", source, key, cert.not_valid_before_utc, cert.not_valid_after_utc)


def _bundle_keys(credentials: MerchantCredentials) -> dict[str, KnownKey]:
    keys: dict[str, KnownKey] = {}
    if credentials.wechatpay_public_key is not None and credentials.wechatpay_public_key_id:
        serial = credentials.wechatpay_public_key_id
        keys[serial] = KnownKey(serial, "public_key", "bundle", credentials.wechatpay_public_key)
    if credentials.platform_certificate is not None:
        serial = certificate_serial(credentials.platform_certificate)
        keys[serial] = _certificate_key(serial, credentials.platform_certificate, "bundle")
    return keys


Fetch = Callable[[], Sequence[PlatformCertificate]]


class KeyStore:
    """Thread-safe. `fetch` downloads and decrypts `/v3/certificates` (the client's own call)."""

    def __init__(
        self,
        credentials: MerchantCredentials,
        *,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.time,
        refresh_min_interval_s: float = REFRESH_MIN_INTERVAL_S,
        expiry_warning: timedelta = EXPIRY_WARNING,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._refresh_min_interval_s = refresh_min_interval_s
        self._expiry_warning = expiry_warning
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()  # one download at a time; the others wait and re-check
        self._known = _bundle_keys(credentials)
        self._keys = VerifierKeys({serial: known.public_key for serial, known in self._known.items()})
        self._refreshed_at = float("-inf")
        self._expiry_checked_at = float("-inf")
        self.check_expiry()

    # --- what we hold -----------------------------------------------------------------------------

    def keys(self) -> VerifierKeys:
        return self._keys

    def known(self) -> list[KnownKey]:
        with self._lock:
            return sorted(
                self._known.values(), key=lambda k: (k.kind, k.not_after or datetime.max.replace(tzinfo=UTC))
            )

    def kind_of(self, serial: str) -> KeyKind:
        known = self._known.get(serial) or self._known.get(serial.upper())
        if known is not None:
            return known.kind
        return "public_key" if serial.startswith(PUBLIC_KEY_ID_PREFIX) else "unknown"

    def add(self, certificates: Sequence[PlatformCertificate]) -> None:
        with self._lock:
            for cert in certificates:
                self._known[cert.serial_no] = _certificate_key(cert.serial_no, cert.certificate, "downloaded")
            self._keys = VerifierKeys({serial: known.public_key for serial, known in self._known.items()})
        self._expiry_checked_at = float("-inf")
        self.check_expiry()

    # --- verification -----------------------------------------------------------------------------

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        max_skew_s: int = MAX_CLOCK_SKEW_S,
        extra: VerifierKeys | None = None,
        refresh: bool = True,
    ) -> str:
        """`verify_signed_message` over every known key (plus `extra`); returns the serial used.

        An unknown certificate serial downloads `/v3/certificates` once (rate-limited) and verifies again.
        """
        signed = read_signed_headers(headers)
        serial = signed.serial if signed is not None else ""
        keys = self._keys if extra is None else self._keys.merged(extra.by_serial)
        # Keys passed in `extra` are certificates just downloaded (the /v3/certificates answer).
        kind = "certificate" if extra is not None and extra.get(serial) is not None else self.kind_of(serial)
        try:
            verify_signed_message(headers, body, keys=keys, now=now, max_skew_s=max_skew_s)
        except UnknownSerialError:
            if refresh and self._refreshed_for(serial):
                return self.verify(headers, body, now=now, max_skew_s=max_skew_s, extra=extra, refresh=False)
            VERIFICATIONS.labels(kind, UnknownSerialError.OUTCOME).inc()
            raise
        except NotificationRejected as exc:
            VERIFICATIONS.labels(kind, exc.outcome).inc()
            raise
        VERIFICATIONS.labels(kind, "ok").inc()
        if self._clock() - self._expiry_checked_at >= EXPIRY_CHECK_INTERVAL_S:
            self.check_expiry()
        return serial

    def _refreshed_for(self, serial: str) -> bool:
        """Download the certificates for an unknown certificate serial; True once `serial` is known."""
        if self._fetch is None or not serial or serial.startswith(PUBLIC_KEY_ID_PREFIX):
            return False  # a public-key id is configured, never downloaded
        with self._refresh_lock:
            if self._keys.get(serial) is not None:  # another thread's download brought it meanwhile
                return True
            if time.monotonic() - self._refreshed_at < self._refresh_min_interval_s:
                return False
            self._refreshed_at = time.monotonic()
            try:
                certificates = self._fetch()
            except DomainError as exc:  # e.g. 404 for a public-key-only merchant, or WeChat down
                log.warning("wxpay.certificates.download_failed", serial=serial, reason=exc.reason)
                return False
            self.add(certificates)
            log.info(
                "wxpay.certificates.downloaded",
                serial=serial,
                serials=[c.serial_no for c in certificates],
            )
            return self._keys.get(serial) is not None

    def refresh(self) -> bool:
        """Download `/v3/certificates` now (operators, `orderpay keys show`); False when not possible."""
        if self._fetch is None:
            return False
        with self._refresh_lock:
            self._refreshed_at = time.monotonic()
            self.add(self._fetch())
        return True

    # --- expiry -----------------------------------------------------------------------------------

    def check_expiry(self) -> list[KnownKey]:
        """Certificates expiring within the warning window: one warning line each, and the metrics."""
        self._expiry_checked_at = self._clock()
        now = datetime.fromtimestamp(self._clock(), UTC)
        expiries = {k.serial: k.not_after for k in self.known() if k.kind == "certificate" and k.not_after}
        for serial, not_after in expiries.items():
            CERTIFICATE_EXPIRY.labels(serial).set((not_after - now).total_seconds())
        expiring = {s: t for s, t in expiries.items() if t - now <= self._expiry_warning}
        CERTIFICATES_EXPIRING.set(len(expiring))
        successor = any(t - now > self._expiry_warning for t in expiries.values())
        for serial, not_after in expiring.items():
            log.warning(
                "wxpay.certificate.expires_soon",
                serial=serial,
                expire_time=not_after.isoformat(),
                days_left=round((not_after - now) / timedelta(days=1), 1),
                successor_known=successor,
                action=_NOTHING_TO_DO if successor else _DOWNLOAD_SUCCESSOR,
            )
        return [k for k in self.known() if k.serial in expiring]
