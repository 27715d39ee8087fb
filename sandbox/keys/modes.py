"""Which key signs what: the merchant's key mode, the public-key migration ramp, certificate rotation.

Modes, as a merchant meets them in production (issue 11; research beyond-parity §1.5):
- `certificate`: a merchant on platform certificates only; every answer and notification carries a
  certificate serial (the certificate rotates, see `sandbox.keyring`).
- `migrating`: WeChat is switching the merchant to the public key. Notifications move to the public key
  for a growing share over about 7 days ("stop" rolls back to the certificate); API answers follow the
  request's `Wechatpay-Serial` (the public-key id gets a public-key signature, anything else the
  certificate).
- `public_key`: switched. Notifications are signed with the public key; answers still follow the request.
- `public_key_only`: a merchant with no platform certificate at all (`/v3/certificates` answers 404);
  everything is signed with the public key, whatever the request says.

`KeyLifecycle.now()` is the only place this reads the time: the sandbox's clock, passed in at build.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.config import ConfigError, SandboxConfig
from sandbox.engine.faults import Dice
from sandbox.engine.models import wire_time
from sandbox.keys.bundle import Credentials
from sandbox.keys.keyring import CertificateChain, PlatformCert, Rotation, drill_rotation

KeyMode = Literal["certificate", "migrating", "public_key", "public_key_only"]
KEY_MODES: tuple[KeyMode, ...] = ("certificate", "migrating", "public_key", "public_key_only")
MIGRATION_RAMP = timedelta(days=7)  # "回调的灰度切换进度由微信支付自动控制,在7天左右完成"
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Signer:
    """The serial a message goes out under (`Wechatpay-Serial`) and the private key that signs it."""

    serial: str
    private_key: rsa.RSAPrivateKey
    kind: Literal["public_key", "certificate"]


@dataclass(frozen=True)
class Migration:
    """Share of notifications signed with the public key: 0 → 1 linearly over `ramp` from `started_at`,
    unless `pinned_share` holds it still."""

    started_at: datetime
    ramp: timedelta
    pinned_share: float | None = None

    def share(self, now: datetime) -> float:
        if self.pinned_share is not None:
            return self.pinned_share
        if self.ramp <= timedelta(0):
            return 1.0
        return min(1.0, max(0.0, (now - self.started_at) / self.ramp))


def legacy_mode(config: SandboxConfig) -> tuple[KeyMode, Migration | None]:
    """Without `key_mode`, the pre-issue-11 knobs decide: `certificates_available: false` is
    `public_key_only`, `notify_sign_mode: cert` is `migrating` held at 0 %, the default `public_key`."""
    if not config.certificates_available:
        return "public_key_only", None
    if config.notify_sign_mode == "cert":
        return "migrating", Migration(datetime.min.replace(tzinfo=UTC), MIGRATION_RAMP, 0.0)
    return "public_key", None


class KeyLifecycle:
    def __init__(
        self, credentials: Credentials, config: Callable[[], SandboxConfig], dice: Dice, clock: Clock
    ) -> None:
        self._credentials = credentials
        self._config = config
        self._dice = dice
        self._clock = clock
        self._lock = threading.RLock()
        self._chain = CertificateChain(
            PlatformCert.from_pem(credentials.platform_cert_pem, credentials.platform_private_key)
        )
        self._explicit: tuple[KeyMode, Migration | None] | None = None
        self._start()

    def _start(self) -> None:
        config = self._config()
        if config.key_mode is not None:  # `orderpay sandbox --key-mode`: a migration starts now
            self.set_mode(config.key_mode, ramp_s=config.migration_ramp_s)

    def now(self) -> datetime:
        """The sandbox's notion of "now" for keys: its clock (see `Sandbox.build`)."""
        return self._clock()

    @property
    def public_key(self) -> Signer:
        creds = self._credentials
        return Signer(creds.wechatpay_public_key_id, creds.wechatpay_private_key, "public_key")

    # --- the mode ---------------------------------------------------------------------------------

    def _state(self) -> tuple[KeyMode, Migration | None]:
        # Until a control call or flag sets a mode, the legacy config knobs decide (they stay live).
        return self._explicit if self._explicit is not None else legacy_mode(self._config())

    @property
    def mode(self) -> KeyMode:
        return self._state()[0]

    @property
    def certificates_available(self) -> bool:
        return self.mode != "public_key_only"

    def set_mode(self, mode: str, *, ramp_s: float | None = None, share: float | None = None) -> None:
        if mode not in KEY_MODES:
            raise ConfigError(f"mode must be one of {', '.join(KEY_MODES)}")
        if share is not None and not 0.0 <= share <= 1.0:
            raise ConfigError("share must be within [0, 1]")
        with self._lock:
            migration = None
            if mode == "migrating":
                if self._rotating():
                    raise ConfigError("a certificate rotation is under way; WeChat never migrates meanwhile")
                ramp = MIGRATION_RAMP if ramp_s is None else timedelta(seconds=ramp_s)
                migration = Migration(self.now(), ramp, share)
            self._explicit = (mode, migration)

    def stop_migration(self) -> None:
        """WeChat's "停止更换": every notification goes back to the platform certificate."""
        with self._lock:
            if self.mode != "migrating":
                raise ConfigError("no public-key migration is under way")
            self._explicit = ("certificate", None)

    def _rotating(self) -> bool:
        rotation = self._chain.rotation
        return rotation is not None and not rotation.natural(self._chain.current)

    # --- certificates -----------------------------------------------------------------------------

    def rotate(self, **plan: Any) -> Rotation:
        with self._lock:
            mode, migration = self._state()
            if mode == "public_key_only":
                raise ConfigError("a public-key-only merchant has no certificate to rotate")
            if mode == "migrating" and migration is not None and 0 < migration.share(self.now()) < 1:
                raise ConfigError("a public-key migration is under way; WeChat never rotates meanwhile")
            only_share = all(value is None for name, value in plan.items() if name != "share")
            if self._chain.rotation is not None and only_share:  # move the rotation under way
                self._chain.pin(plan.get("share"))
                return self._chain.rotation
            rotation = drill_rotation(self.now(), **plan)
            self._chain.start_drill(rotation)
            return rotation

    def finish_rotation(self) -> None:
        with self._lock:
            if self._chain.rotation is None:
                raise ConfigError("no certificate rotation is under way")
            self._chain.finish()

    def listed_certificates(self) -> list[PlatformCert]:
        with self._lock:
            return self._chain.listed(self.now())

    def reset(self) -> None:
        with self._lock:
            self._chain.reset()
            self._explicit = None
            self._start()

    # --- who signs --------------------------------------------------------------------------------

    def _certificate(self) -> Signer:
        cert = self._chain.signer(self.now(), self._dice.roll)
        return Signer(cert.serial_no, cert.private_key, "certificate")

    def response_signer(self, request_serial: str | None) -> Signer:
        """An API answer: certificate mode ignores the header, public-key-only too (the other way)."""
        with self._lock:
            mode = self.mode
            if mode == "public_key_only":
                return self.public_key
            if mode != "certificate" and request_serial == self._credentials.wechatpay_public_key_id:
                return self.public_key
            return self._certificate()

    def notification_signer(self) -> Signer:
        with self._lock:
            mode, migration = self._state()
            if mode in ("public_key", "public_key_only"):
                return self.public_key
            if mode == "migrating" and migration is not None and self._dice.roll(migration.share(self.now())):
                return self.public_key
            return self._certificate()

    # --- inspection -------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        with self._lock:
            now = self.now()
            mode, migration = self._state()
            listed = {cert.serial_no for cert in self._chain.listed(now)}
            rotation = self._chain.rotation
            return {
                "mode": mode,
                "now": wire_time(now),
                "public_key_id": self._credentials.wechatpay_public_key_id,
                "certificates_available": mode != "public_key_only",
                "migration": None
                if migration is None
                else {
                    "started_at": wire_time(migration.started_at) if migration.pinned_share is None else None,
                    "ramp_s": migration.ramp.total_seconds(),
                    "pinned_share": migration.pinned_share,
                    "public_key_share": migration.share(now),
                },
                "certificates": [
                    {
                        "serial_no": cert.serial_no,
                        "effective_time": wire_time(cert.not_before),
                        "expire_time": wire_time(cert.not_after),
                        "listed": cert.serial_no in listed and mode != "public_key_only",
                        "role": "current" if cert is self._chain.current else "successor",
                    }
                    for cert in self._chain.known()
                ],
                "rotation": None
                if rotation is None
                else {
                    "successor": rotation.successor.serial_no,
                    "publish_at": wire_time(rotation.publish_at),
                    "ramp_start": wire_time(rotation.ramp_start),
                    "ramp_end": wire_time(rotation.ramp_end),
                    "pinned_share": rotation.pinned_share,
                    "successor_share": rotation.share(now) if now >= rotation.publish_at else 0.0,
                },
            }
