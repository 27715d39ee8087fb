"""The production guard: configurations `orderpay serve` refuses to run with (SECURITY.md).

The rules follow exposure: the token rules apply as soon as any listener (gRPC, sidecar, console,
metrics) is not on loopback or `ORDERPAY_ENV=production`; the gateway rules (https, an https notify URL,
the system clock) when the WeChat Pay gateway is not on loopback or `ORDERPAY_ENV=production` (a
loopback gateway is then an egress proxy, and may speak http). Each problem names the setting and never
echoes a secret. `orderpay dev` and the tests run against a loopback sandbox on loopback listeners, so
nothing here stops them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from server.config import DEV_TOKENS, ConfigError, Settings
from server.console.listener import check_console_listener
from server.loopback import is_loopback

MIN_TOKEN_CHARS = 32
MIN_TOKEN_BITS = 80  # of the token's own character statistics: a random 32-hex token has about 110
GENERATE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
# The patterns are long enough that what `secrets` makes never matches them by chance: with six, a random
# 64-hex token had a run, a repeated 6-gram or "123456"/"abcdef" about once in 10,000 (measured), and the
# start refused a token generated as the message says. Eight: under one in a million for hex.
PATTERN = 8
_RUN = re.compile(rf"(.)\1{{{PATTERN - 1},}}")  # eight of one character in a row
_WORDS = ("password", "passwd", "secret", "token", "admin", "changeme", "letmein", "qwerty", "example",
          "orderpay", "default", "12345678", "abcdefgh")  # fmt: skip
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
    declared = settings.env.strip().lower() == "production"
    remote_gateway = not is_loopback(gateway.hostname or "")
    exposed = [name for name, address in _listeners(settings) if not is_loopback(listen_host(address))]
    if remote_gateway and gateway.scheme != "https":
        problems.append("ORDERPAY_WXPAY_BASE_URL must be https:// when the gateway is not on loopback")
    if remote_gateway or declared:
        notify = urlsplit(settings.notify_url)
        if notify.scheme != "https":
            problems.append("ORDERPAY_NOTIFY_URL must be https:// (WeChat Pay only calls https notify URLs)")
    if settings.metrics_listen and not is_loopback(listen_host(settings.metrics_listen)):
        message = (
            f"ORDERPAY_METRICS_LISTEN={settings.metrics_listen} serves unauthenticated metrics on a "
            "non-loopback address: keep it on loopback (scrape through a proxy), or set "
            "ORDERPAY_ALLOW_PUBLIC_METRICS=true when the network in front restricts it"
        )
        (waivers if settings.allow_public_metrics else problems).append(message)
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
    if (remote_gateway or declared) and settings.clock != "system":
        problems.append("ORDERPAY_CLOCK=sandbox follows the sandbox's clock: development only")
    if remote_gateway or declared or exposed:  # after the listeners' own problems, which say more
        problems.extend(_token_problems(settings.api_tokens))
    return GuardReport(tuple(problems), tuple(waivers))


def _listeners(settings: Settings) -> list[tuple[str, str]]:
    named = [
        ("ORDERPAY_GRPC_LISTEN", settings.grpc_listen),
        ("ORDERPAY_NOTIFY_LISTEN", settings.notify_listen),
        ("ORDERPAY_CONSOLE_LISTEN", settings.console_listen),
        ("ORDERPAY_METRICS_LISTEN", settings.metrics_listen),
    ]
    return [(name, address) for name, address in named if address]


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
    if any(_weak(token) for token in tokens if len(token) >= MIN_TOKEN_CHARS):
        problems.append(
            "ORDERPAY_API_TOKENS: a token has too little entropy (a run of one character, a repeated or "
            f"dictionary-like text); generate each with {GENERATE}"
        )
    if len(set(tokens)) != len(tokens):
        problems.append("ORDERPAY_API_TOKENS: one token is given to two roles; give each role its own")
    return problems


def _weak(token: str) -> bool:
    """Guessable however long: runs, repeats, words, or too few bits in its own character statistics."""
    lowered = token.lower()
    if _RUN.search(token):
        return True
    # A word counts when it carries the token: what is left without the words is too short. A random token
    # holds "token" or "admin" by chance about once in a million; its other characters still carry it.
    for word in _WORDS:
        lowered = lowered.replace(word, "")
    if len(lowered) < MIN_TOKEN_CHARS:
        return True
    if any(token.count(token[i : i + PATTERN]) > 1 for i in range(len(token) - PATTERN + 1)):
        return True
    counts = Counter(token)
    bits = -sum(n * math.log2(n / len(token)) for n in counts.values())
    return bits < MIN_TOKEN_BITS
