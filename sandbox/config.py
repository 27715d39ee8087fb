"""Frozen sandbox configuration: the knobs the CLI, the control API and tests set.

A running sandbox holds one `SandboxConfig` at a time and swaps it whole (`dataclasses.replace`), so a
reader always sees a consistent set. Faults have the same shape globally and per order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.keys.accounts import AccountSpec
from sandbox.keys.bundle import Credentials

NotifySignMode = Literal["pubkey", "cert"]
ApiErrorCode = Literal["SYSTEM_ERROR", "FREQUENCY_LIMITED", "BANKERROR"]
RefundStatus = Literal["SUCCESS", "ABNORMAL", "CLOSED"]
# WeChat's documented re-delivery schedule after a failed notification (15 retries, 24 h 4 min).
RETRY_SCHEDULE_S: tuple[float, ...] = (
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
)  # fmt: skip


@dataclass(frozen=True)
class Faults:
    """Fault knobs. Rates are probabilities in [0, 1], drawn from the sandbox's seeded RNG."""

    duplicate_notifications: int = 0  # extra copies of every notification
    duplicate_spacing_s: float = 0.0  # 0 = the copies go out concurrently; else this far apart
    notify_delay_s: float = 0.0  # hold each notification this long before its first attempt
    notify_drop_rate: float = 0.0  # share of notifications never sent at all
    refund_before_payment: bool = False  # hold the payment notification until a refund one went out
    signtest_probe: bool = False  # send a `WECHATPAY/SIGNTEST/` probe before the real notification
    stale_timestamp_s: int = 0  # notifications carry a timestamp this far in the past
    wrong_amount_delta: int = 0  # added to amount.total inside the encrypted payment resource
    notify_before_prepay_response: bool = False  # pay + notify while the prepay request is in flight
    api_latency_ms: float = 0.0  # added to every emulated API answer
    api_latency_jitter_ms: float = 0.0  # ± uniform jitter on top of the latency
    api_error_rate: float = 0.0  # share of emulated API calls answered with `api_error_code`
    api_error_code: ApiErrorCode = "SYSTEM_ERROR"
    api_error_after_processing: bool = False  # the call takes effect, but the answer is the error
    hang_rate: float = 0.0  # share of emulated API calls that never answer (until hang_timeout_s)
    hang_timeout_s: float = 600.0
    # Decryption faults and raw-body traps for notifications (sandbox/traps.py).
    notify_wrong_apiv3_key: bool = False  # the resource is sealed with another APIv3 key
    notify_wrong_associated_data: bool = False  # the envelope names another associated_data than sealed
    raw_body_traps: bool = False  # non-ASCII, escaped and literal newlines in the bodies' field values
    bill_omit: bool = False  # the order's payment is left out of the bills (sandbox/bills.py)
    bill_amount_delta_fen: int = 0  # added to the payment row's 订单金额 in the bills


@dataclass(frozen=True)
class SandboxConfig:
    credentials: Credentials
    time_scale: float = 1.0  # multiplies the retry schedule and fault delays (0.001 in tests)
    auto_pay_delay_s: float | None = None  # pay every prepay after this many seconds (load tests)
    refund_settle_delay_s: float | None = 0.05  # None = refunds stay PROCESSING until a control call
    refund_settle_status: RefundStatus = "SUCCESS"
    notify_sign_mode: NotifySignMode = "pubkey"
    notify_timeout_s: float = 5.0  # WeChat waits 5 s for the merchant's answer
    certificates_available: bool = True  # False = a public-key-only merchant (404 on /v3/certificates)
    # /v3/certificates refusals seen in the wild besides the public-key-only 404: "403" (NO_AUTH) and
    # "500" (SYSTEM_ERROR 系统繁忙); "404" forces RESOURCE_NOT_EXISTS; "" = answer normally.
    certificates_refusal: str = ""
    # certificate | migrating | public_key | public_key_only (sandbox/key_modes.py); None = derived from
    # notify_sign_mode and certificates_available. Changed at run time through /sandbox/v1/keys.
    key_mode: str | None = None
    migration_ramp_s: float = 7 * 24 * 3600.0  # key_mode migrating: notifications reach 100 % after this
    seed: int | None = None
    bill_hash_mismatch: bool = False  # the bill apply answer carries a wrong hash_value
    bill_bom: bool = False  # bill files start with a UTF-8 BOM
    bill_crlf: bool = False  # bill files end lines with CRLF
    faults: Faults = field(default_factory=Faults)
    # Several accounts (sandbox/keys/accounts.py); empty = the one merchant in `credentials`.
    accounts: tuple[AccountSpec, ...] = ()


# The fields the control API may read and change (credentials are fixed for a process's life).
_FIXED = {
    "credentials",
    "faults",
    "seed",
    "key_mode",
    "migration_ramp_s",
    "accounts",
}  # key modes: /sandbox/v1/keys
_TUNABLE = {f.name for f in dataclasses.fields(SandboxConfig)} - _FIXED
_FAULT_FIELDS = {f.name: f for f in dataclasses.fields(Faults)}
_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(SandboxConfig)}


class ConfigError(ValueError):
    """A control-API update names an unknown knob or gives it a value of the wrong type."""


def config_to_json(config: SandboxConfig) -> dict[str, Any]:
    data = {name: getattr(config, name) for name in sorted(_TUNABLE)}
    data["seed"] = config.seed
    data["key_mode"], data["migration_ramp_s"] = config.key_mode, config.migration_ramp_s
    data["faults"] = dataclasses.asdict(config.faults)
    return data


def update_faults(faults: Faults, changes: dict[str, Any]) -> Faults:
    unknown = set(changes) - set(_FAULT_FIELDS)
    if unknown:
        raise ConfigError(f"unknown fault knob(s): {', '.join(sorted(unknown))}")
    # Check against the declared type (its default's), not the current value's, so an int
    # accepted for a float knob never narrows what later updates may send.
    coerced: dict[str, Any] = {}
    for name, value in changes.items():
        expected = type(_FAULT_FIELDS[name].default)
        _check_type(name, value, expected)
        coerced[name] = float(value) if expected is float and value is not None else value
    return dataclasses.replace(faults, **coerced)


def update_config(config: SandboxConfig, changes: dict[str, Any]) -> SandboxConfig:
    """A partial update, as `PUT /sandbox/v1/config` sends it."""
    fault_changes = changes.get("faults", {})
    plain = {k: v for k, v in changes.items() if k != "faults"}
    unknown = set(plain) - _TUNABLE
    if unknown or not isinstance(fault_changes, dict):
        raise ConfigError(f"unknown or read-only setting(s): {', '.join(sorted(unknown)) or 'faults'}")
    for name, value in plain.items():
        default = _CONFIG_FIELDS[name].default
        expected = type(default) if default is not None else float
        _check_type(name, value, expected)
        if expected is float and value is not None:
            plain[name] = float(value)
    faults = update_faults(config.faults, fault_changes)
    return dataclasses.replace(config, faults=faults, **plain)


_CHOICES: dict[str, tuple[str, ...]] = {
    "notify_sign_mode": ("pubkey", "cert"),
    "refund_settle_status": ("SUCCESS", "ABNORMAL", "CLOSED"),
    "api_error_code": ("SYSTEM_ERROR", "FREQUENCY_LIMITED", "BANKERROR"),
    "certificates_refusal": ("", "403", "404", "500"),
}


def _check_type(name: str, value: Any, expected: type) -> None:
    if name in _CHOICES and value not in _CHOICES[name]:
        raise ConfigError(f"{name} must be one of {', '.join(_CHOICES[name])}")
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if value is None and name in {"auto_pay_delay_s", "refund_settle_delay_s"}:
        return
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{name} must be {expected.__name__}")
