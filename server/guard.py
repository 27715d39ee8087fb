"""The production guard: configurations `orderpay serve` refuses to run with (SECURITY.md).

A deployment is treated as production as soon as the WeChat Pay gateway is not a loopback sandbox.
Each problem names the setting and never echoes a secret. `orderpay dev` and the tests run against a
loopback sandbox on loopback listeners, so nothing here stops them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from server.config import DEV_TOKENS, ConfigError, Settings
from server.console.listener import check_console_listener
from server.loopback import is_loopback

MIN_TOKEN_CHARS = 32
_DEV_TOKEN_VALUES = frozenset(pair.partition(":")[2] for pair in DEV_TOKENS.split(","))


class UnsafeConfigurationError(ConfigError):
    """`serve` would run unsafely; the message names the setting to change."""


@dataclass(frozen=True)
class GuardReport:
    problems: tuple[str, ...]
    # Accepted only because an explicit opt-out was set; `serve` logs each one loudly.
    waivers: tuple[str, ...]


def listen_host(address: str) -> str:
    return address.rpartition(":")[0]


def check(settings: Settings) -> GuardReport:
    problems: list[str] = []
    waivers: list[str] = []
    gateway = urlsplit(settings.wxpay_base_url)
    production = not is_loopback(gateway.hostname or "")
    if production:
        if gateway.scheme != "https":
            problems.append("ORDERPAY_WXPAY_BASE_URL must be https:// when the gateway is not on loopback")
        problems.extend(_token_problems(settings.api_tokens))
        notify = urlsplit(settings.notify_url)
        if notify.scheme != "https":
            problems.append("ORDERPAY_NOTIFY_URL must be https:// (WeChat Pay only calls https notify URLs)")
    tls = bool(settings.grpc_tls_cert and settings.grpc_tls_key)
    if not tls and not is_loopback(listen_host(settings.grpc_listen)):
        message = (
            f"ORDERPAY_GRPC_LISTEN={settings.grpc_listen} serves plaintext gRPC on a non-loopback address: "
            "set ORDERPAY_GRPC_TLS_CERT/ORDERPAY_GRPC_TLS_KEY, or ORDERPAY_ALLOW_PLAINTEXT_GRPC=true "
            "when TLS ends in front of it"
        )
        (waivers if settings.allow_plaintext_grpc else problems).append(message)
    try:
        console = check_console_listener(settings)
    except ConfigError as unsafe:
        problems.append(str(unsafe))
    else:
        if console is not None and not console.tls and not is_loopback(console.host):
            waivers.append(
                f"ORDERPAY_CONSOLE_LISTEN={settings.console_listen} serves the console in plaintext"
            )
    if production and settings.clock != "system":
        problems.append("ORDERPAY_CLOCK=sandbox follows the sandbox's clock: development only")
    return GuardReport(tuple(problems), tuple(waivers))


def enforce(settings: Settings) -> GuardReport:
    """Raise UnsafeConfigurationError with the first problem (one line); return the waivers to log."""
    report = check(settings)
    if report.problems:
        raise UnsafeConfigurationError("refusing to start: " + report.problems[0])
    return report


def _token_problems(api_tokens: str) -> list[str]:
    pairs = [p.strip() for p in api_tokens.split(",") if p.strip()]
    tokens = [pair.partition(":")[2] for pair in pairs]
    problems: list[str] = []
    if not pairs:
        problems.append("ORDERPAY_API_TOKENS is empty: set a bff and an admin token")
    if any(token in _DEV_TOKEN_VALUES for token in tokens):
        problems.append("ORDERPAY_API_TOKENS holds a public development token: generate new tokens")
    if any(len(token) < MIN_TOKEN_CHARS for token in tokens):
        problems.append(f"ORDERPAY_API_TOKENS: every token needs at least {MIN_TOKEN_CHARS} characters")
    if len(set(tokens)) != len(tokens):
        problems.append("ORDERPAY_API_TOKENS: one token is given to two roles; give each role its own")
    return problems
