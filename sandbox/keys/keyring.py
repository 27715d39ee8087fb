"""The platform certificates the sandbox signs with, and their rotation (issue 11).

WeChat Pay lists a new platform certificate in `/v3/certificates` 10 days before the old one expires and,
during the last 5 days, signs a growing share of answers and notifications with it; verifiers must hold
several certificates by serial (research beyond-parity §1.5, wechatpay5_0.shtml). Here the natural
schedule follows the current certificate's own `not_after`; a drill compresses it into seconds. Every
time is read through the `now` the caller passes in (the sandbox's one clock), never from the system.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.keys.bundle import PLATFORM_CERT_VALIDITY, new_key, self_signed_cert, serial_hex

PUBLISHED_BEFORE_EXPIRY = timedelta(days=10)  # the successor is listed this long before expiry
RAMP_BEFORE_EXPIRY = timedelta(days=5)  # and signs a growing share from here until expiry


@dataclass(frozen=True)
class PlatformCert:
    serial_no: str
    pem: str
    private_key: rsa.RSAPrivateKey
    not_before: datetime
    not_after: datetime

    @classmethod
    def from_pem(cls, pem: str, private_key: rsa.RSAPrivateKey) -> PlatformCert:
        cert = x509.load_pem_x509_certificate(pem.encode())
        return cls(
            serial_no=f"{cert.serial_number:X}",
            pem=pem,
            private_key=private_key,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )

    @classmethod
    def mint(cls, now: datetime, validity: timedelta = PLATFORM_CERT_VALIDITY) -> PlatformCert:
        """A new certificate over a new key pair (RSA 2048), as WeChat issues one at rotation."""
        key = new_key()
        return cls.from_pem(self_signed_cert(key, serial_hex(), now, validity).decode(), key)


@dataclass(frozen=True)
class Rotation:
    """`successor` is listed from `publish_at`, signs share 0→1 over [ramp_start, ramp_end), then
    replaces the old certificate, which is no longer listed nor used. `pinned_share` freezes the ramp."""

    successor: PlatformCert
    publish_at: datetime
    ramp_start: datetime
    ramp_end: datetime
    pinned_share: float | None = None

    def share(self, now: datetime) -> float:
        if self.pinned_share is not None:
            return self.pinned_share
        if now < self.ramp_start:
            return 0.0
        if now >= self.ramp_end:
            return 1.0
        return (now - self.ramp_start) / (self.ramp_end - self.ramp_start)

    def natural(self, expiring: PlatformCert) -> bool:
        return self.ramp_end == expiring.not_after


def natural_rotation(expiring: PlatformCert, now: datetime) -> Rotation:
    return Rotation(
        successor=PlatformCert.mint(now),
        publish_at=expiring.not_after - PUBLISHED_BEFORE_EXPIRY,
        ramp_start=expiring.not_after - RAMP_BEFORE_EXPIRY,
        ramp_end=expiring.not_after,
    )


def drill_rotation(
    now: datetime,
    *,
    duration_s: float | None = None,
    publish_at: datetime | None = None,
    ramp_start: datetime | None = None,
    ramp_end: datetime | None = None,
    share: float | None = None,
    successor: PlatformCert | None = None,
) -> Rotation:
    """The natural 10-day schedule compressed into `duration_s` (listed now, ramp over the second half),
    or explicit times; `share` pins the new certificate's share instead of ramping."""
    duration = timedelta(seconds=duration_s if duration_s is not None else 10.0)
    start = ramp_start or now + duration / 2
    return Rotation(
        successor=successor or PlatformCert.mint(now),
        publish_at=publish_at or now,
        ramp_start=start,
        ramp_end=ramp_end or now + duration,
        pinned_share=share,
    )


class CertificateChain:
    """The current platform certificate and the rotation under way, if any. Not thread-safe on its
    own: the owner (`KeyLifecycle`) serialises calls."""

    def __init__(self, initial: PlatformCert) -> None:
        self._initial = initial
        self.current = initial
        self.rotation: Rotation | None = None

    def reset(self) -> None:
        self.current, self.rotation = self._initial, None

    def advance(self, now: datetime) -> None:
        """Finish a rotation whose ramp is over; start the natural one when its time has come."""
        rotation = self.rotation
        if rotation is not None and rotation.pinned_share is None and now >= rotation.ramp_end:
            self.current, self.rotation = rotation.successor, None
        if self.rotation is None and now >= self.current.not_after - PUBLISHED_BEFORE_EXPIRY:
            self.rotation = natural_rotation(self.current, now)

    def listed(self, now: datetime) -> list[PlatformCert]:
        self.advance(now)
        rotation = self.rotation
        if rotation is not None and now >= rotation.publish_at:
            return [self.current, rotation.successor]
        return [self.current]

    def signer(self, now: datetime, roll: Callable[[float], bool]) -> PlatformCert:
        self.advance(now)
        rotation = self.rotation
        if rotation is not None and now >= rotation.publish_at and roll(rotation.share(now)):
            return rotation.successor
        return self.current

    def start_drill(self, rotation: Rotation) -> None:
        self.rotation = rotation

    def pin(self, share: float | None) -> None:
        """Hold the rotation under way at this share of the successor (None: back to its schedule)."""
        if self.rotation is not None:
            self.rotation = Rotation(
                self.rotation.successor,
                self.rotation.publish_at,
                self.rotation.ramp_start,
                self.rotation.ramp_end,
                share,
            )

    def finish(self) -> None:
        """The old certificate expires now: the successor alone is listed and signs."""
        if self.rotation is not None:
            self.current, self.rotation = self.rotation.successor, None

    def known(self) -> list[PlatformCert]:
        return [self.current] + ([self.rotation.successor] if self.rotation is not None else [])
