"""Settings, read once from `ORDERPAY_*` variables and an optional TOML file into a frozen object.

This is the only module that reads the environment. Precedence: environment > TOML file > defaults.
Secrets are never values here: the credentials bundle is a directory of files (`orderpay keys init`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

DEV_TOKENS = "bff:dev-bff-token,admin:dev-admin-token"
STATE_DIR = Path(".orderpay")  # the dev state directory, made on demand (keys, the default database)
SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")


class StartupError(Exception):
    """The process cannot start (a setting, a port, the database); the message is one line saying why
    and what to change. The CLI prints it and exits 2; the traceback only with `orderpay --debug`."""


class ConfigError(StartupError, ValueError):
    """A setting is missing, unknown or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///.orderpay/orderpay.db"
    grpc_listen: str = "127.0.0.1:50051"
    notify_listen: str = "127.0.0.1:8080"
    notify_url: str = "http://127.0.0.1:8080/wxpay/notify"
    wxpay_base_url: str = "http://127.0.0.1:8090"
    credentials_dir: str = ".orderpay/keys"
    api_tokens: str = DEV_TOKENS
    # gRPC serving: one event loop per process (scale out with `serve --workers N`, not threads)
    max_inflight: int = 64  # calls doing work at once; beyond it RESOURCE_EXHAUSTED / OVERLOADED
    offload_workers: int = 8  # threads for the calls that talk to WeChat Pay (sync HTTP)
    db_threads: int = 4  # PostgreSQL: threads overlapping round trips (0, and SQLite: inline on the loop)
    grpc_max_concurrent_rpcs: int = 10_000  # a memory cap only: parked long-polls count here
    grpc_tls_cert: str = ""
    grpc_tls_key: str = ""
    grpc_tls_client_ca: str = ""
    # Plaintext gRPC on a non-loopback address is refused unless TLS ends in front of it and this says so.
    allow_plaintext_grpc: bool = False
    shutdown_grace_s: float = 10.0
    # `serve --workers N` sets these for each worker process it spawns (ORDERPAY_WORKER_INDEX, ..._REUSE_PORT)
    worker_index: int = 0  # the first worker alone serves the sidecar, metrics and console
    reuse_port: bool = False  # workers share the gRPC port (SO_REUSEPORT)
    # database
    db_pool_size: int = 40
    db_busy_timeout_ms: int = 10_000
    # orders
    order_ttl_s: int = 1800
    # WeChat Pay client
    wxpay_connect_timeout_s: float = 2.0
    wxpay_timeout_s: float = 5.0
    wxpay_max_attempts: int = 3
    wxpay_backoff_base_s: float = 0.2
    wxpay_breaker_fail_max: int = 5
    wxpay_breaker_reset_s: float = 10.0
    # notify sidecar
    notify_max_body_bytes: int = 64 * 1024
    # Threads applying notifications; 0 = where database work runs (inline on the loop for SQLite, the
    # db_threads pool for PostgreSQL; measured in README § Benchmarks). More only contend for the GIL.
    notify_workers: int = 0
    notify_clock_skew_s: int = 300
    # shedding slow and surplus clients on every HTTP listener (server/serving/shedding.py)
    notify_max_connections: int = 512
    notify_header_timeout_s: float = 10.0
    notify_body_timeout_s: float = 10.0
    notify_idle_timeout_s: float = 15.0
    # Prometheus /metrics on its own listener; empty = not served
    metrics_listen: str = "127.0.0.1:9464"
    # fulfilment and jobs
    jobs_enabled: bool = True
    job_interval_s: float = 1.0
    fulfilment_max_attempts: int = 8
    fulfilment_backoff_base_s: float = 30.0
    fulfilment_backoff_max_s: float = 1800.0
    auto_refund_on_fulfilment_failure: bool = True
    reconcile_schedule_s: tuple[float, ...] = (60.0, 300.0, 900.0, 3600.0)
    refund_poll_schedule_s: tuple[float, ...] = (60.0, 300.0, 900.0, 3600.0)
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    # --- issue 13: operations console and dev clock -------------------------------------------------
    # The console's own listener: "" = off (`orderpay dev` turns it on at 127.0.0.1:8081); a bare
    # ":PORT" means loopback. A non-loopback address needs TLS, or the explicit opt-out below.
    console_listen: str = ""
    console_tls_cert: str = ""
    console_tls_key: str = ""
    console_allow_public_plaintext: bool = False
    console_session_ttl_s: int = 8 * 3600
    # "system", or "sandbox" (dev only: follow GET /sandbox/v1/clock of a loopback gateway).
    clock: str = "system"

    @property
    def tokens(self) -> dict[str, str]:
        """token -> role, from `role:token` pairs."""
        out: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in self.api_tokens.split(","))):
            role, sep, token = pair.partition(":")
            if not sep or role not in {"bff", "admin"} or not token:
                # Never echo the pair: without its colon, it is the token itself.
                raise ConfigError("ORDERPAY_API_TOKENS: want comma-separated role:token pairs (bff|admin)")
            out[token] = role
        return out

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _coerce(raw: object, target: object) -> object:
    if isinstance(target, bool):
        return raw if isinstance(raw, bool) else str(raw).strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(target, int):
        return int(str(raw))
    if isinstance(target, float):
        return float(str(raw))
    if isinstance(target, tuple):
        items = raw if isinstance(raw, list) else str(raw).split(",")
        return tuple(float(x) for x in items)
    return str(raw)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from defaults, then `ORDERPAY_CONFIG_FILE` (TOML), then `ORDERPAY_*` variables."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    config_file = env.get("ORDERPAY_CONFIG_FILE")
    if config_file:
        with Path(config_file).open("rb") as fh:
            values.update(tomllib.load(fh))
    for f in fields(Settings):
        key = f"ORDERPAY_{f.name.upper()}"
        if key in env:
            values[f.name] = env[key]
    defaults = Settings()
    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown settings: {sorted(unknown)}")
    coerced: dict[str, Any] = {}
    for name, raw in values.items():
        try:
            coerced[name] = _coerce(raw, getattr(defaults, name))
        except ValueError as exc:
            kind = type(getattr(defaults, name)).__name__
            raise ConfigError(f"ORDERPAY_{name.upper()}: expected {kind}, got {raw!r}") from exc
    settings = replace(defaults, **coerced)
    _check(settings)
    return settings


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("auto", "json", "console")


def _check(settings: Settings) -> None:
    """What can be known wrong before anything starts fails here, in one line naming the variable."""
    settings.tokens  # noqa: B018 - validate early so a bad token list fails at start, not on first call
    if settings.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(
            f"ORDERPAY_LOG_LEVEL: want one of {', '.join(LOG_LEVELS)}; got {settings.log_level!r}"
        )
    check_database_url(settings.database_url)
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(
            f"ORDERPAY_LOG_FORMAT: want one of {', '.join(LOG_FORMATS)}; got {settings.log_format!r}"
        )


def check_database_url(url: str) -> None:
    """`sqlite:///PATH` (the directory must exist, but for the dev state dir) or `postgresql://...`."""
    name = "ORDERPAY_DATABASE_URL"
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        if not url.startswith(SQLITE_PREFIX):
            raise ConfigError(
                f"{name}: {url!r} is not sqlite:///PATH (three slashes, then the path;"
                " four for an absolute one: sqlite:////var/lib/orderpay.db)"
            )
        path = url.removeprefix(SQLITE_PREFIX)
        if path in {"", ":memory:"}:
            return
        parent = Path(path).parent
        if not parent.is_dir() and parent.resolve() != STATE_DIR.resolve():
            raise ConfigError(f"{name}: directory {parent} does not exist (create it, or fix the path)")
        return
    if parsed.scheme in POSTGRES_SCHEMES:
        try:
            parsed.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise ConfigError(f"{name}: {redact(url)} has a bad port") from exc
        if not parsed.path.strip("/"):
            raise ConfigError(f"{name}: {redact(url)} names no database (postgresql://USER@HOST:PORT/DB)")
        return
    raise ConfigError(
        f"{name}: unsupported scheme {parsed.scheme!r} in {redact(url)}; want sqlite:///PATH or "
        "postgresql://USER@HOST:PORT/DB"
    )


def redact(url: str) -> str:
    """The URL without its password, fit for a banner or a log line."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


def describe_database(url: str) -> str:
    """What the banner shows: the redacted URL, and for SQLite the file it resolves to."""
    if url.startswith(SQLITE_PREFIX) and url.removeprefix(SQLITE_PREFIX) not in {"", ":memory:"}:
        return f"{url}   ({Path(url.removeprefix(SQLITE_PREFIX)).resolve()})"
    return redact(url)
