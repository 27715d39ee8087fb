"""Where the console listens, and whether it may (the production guard's rule for this listener):
loopback by default; any other address needs TLS or `ORDERPAY_CONSOLE_ALLOW_PUBLIC_PLAINTEXT=true`.

HOOK for the lead: `check_console_listener` belongs with server/guard.py's other listener rules.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from server.config import ConfigError, Settings
from server.loopback import is_loopback


@dataclass(frozen=True)
class ConsoleListener:
    host: str
    port: int
    tls: bool

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port if port is None else port}/"


def check_console_listener(settings: Settings) -> ConsoleListener | None:
    """None when the console is off; a ConfigError (one line, naming the variable) when it is unsafe."""
    listen = settings.console_listen.strip()
    if not listen:
        return None
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError(f"ORDERPAY_CONSOLE_LISTEN: want HOST:PORT or :PORT, got {listen!r}")
    host = host.strip("[]") or "127.0.0.1"
    tls = bool(settings.console_tls_cert and settings.console_tls_key)
    if bool(settings.console_tls_cert) != bool(settings.console_tls_key):
        raise ConfigError("ORDERPAY_CONSOLE_TLS_CERT and ORDERPAY_CONSOLE_TLS_KEY go together")
    if not is_loopback(host) and not tls and not settings.console_allow_public_plaintext:
        raise ConfigError(
            f"ORDERPAY_CONSOLE_LISTEN={listen} is not loopback: set ORDERPAY_CONSOLE_TLS_CERT/_KEY, "
            "or ORDERPAY_CONSOLE_ALLOW_PUBLIC_PLAINTEXT=true behind a TLS-terminating proxy"
        )
    return ConsoleListener(host, int(port_text), tls)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.console_tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.console_tls_cert, settings.console_tls_key)
    return context
