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
from urllib.parse import parse_qsl, urlparse

DEV_TOKENS = "bff:dev-bff-token,admin:dev-admin-token,feed:dev-feed-token"
ROLES = ("bff", "admin", "feed")  # feed: the business's own systems on the event feed (issue 19)
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
    # asyncio (the standard library's) | uvloop: opt-in until it shows a gain beyond this box's noise
    # (docs/benchmarks.md: B1 CPU ÷ echo 5.05 vs 5.40 median, ranges overlapping)
    event_loop: str = "asyncio"
    grpc_max_concurrent_rpcs: int = 10_000  # a memory cap only: parked long-polls count here
    grpc_tls_cert: str = ""
    grpc_tls_key: str = ""
    grpc_tls_client_ca: str = ""
    # Plaintext gRPC on a non-loopback address is refused unless TLS ends in front of it and this says so.
    allow_plaintext_grpc: bool = False
    # "production" applies the production guard's rules even with every listener on loopback
    env: str = ""
    # Prometheus metrics on a non-loopback address are refused unless this says so (logged at start)
    allow_public_metrics: bool = False
    shutdown_grace_s: float = 10.0
    # `serve --workers N` sets these for each worker process it spawns (ORDERPAY_WORKER_INDEX, ..._REUSE_PORT)
    worker_index: int = 0  # the first worker alone serves the sidecar, metrics and console
    reuse_port: bool = False  # workers share the gRPC port (SO_REUSEPORT)
    # database
    # A PostgreSQL URL with sessions of its own (direct, or a session-mode pooler) for what needs one:
    # the LISTEN connection and the migration lock, when database_url goes through a pgbouncer in
    # transaction mode; "" = database_url. docs/high-availability.md § Connection poolers
    database_session_url: str = ""
    # A hot standby for the operator's reads (admin lists, console pages, overview); "" = the primary.
    # Never a read that decides a write, never GetOrder. docs/high-availability.md § Read routing
    database_read_url: str = ""
    db_health_interval_s: float = 2.0  # how often gRPC health re-checks that a writable primary answers
    # What a COMMIT waits for (PostgreSQL's synchronous_commit, per orderpay session): "" = the server's
    # setting (with a synchronous standby: wait for it; durability first); "local" = never wait for a
    # standby (writes go on while none is connected, but a failover may lose acknowledged writes).
    db_synchronous_commit: str = ""
    db_pool_size: int = 40
    db_busy_timeout_ms: int = 10_000
    # orders
    order_ttl_s: int = 1800
    # WeChat Pay client
    wxpay_connect_timeout_s: float = 2.0
    wxpay_timeout_s: float = 5.0
    wxpay_bill_download_timeout_s: float = 60.0  # a bill file: its own budget, not an API call's
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
    # per peer address (0: a quarter of the cap); raise it when a proxy is the only peer
    notify_max_connections_per_peer: int = 0
    # Prometheus /metrics on its own listener; empty = not served
    metrics_listen: str = "127.0.0.1:9464"
    # fulfilment and jobs
    jobs_enabled: bool = True
    job_interval_s: float = 1.0
    fulfilment_max_attempts: int = 8
    fulfilment_backoff_base_s: float = 30.0
    fulfilment_backoff_max_s: float = 1800.0
    auto_refund_on_fulfilment_failure: bool = True
    # --- issue 19: the order event feed -------------------------------------------------------------
    feed_retention_days: float = 30.0  # `orderpay purge` drops older entries every subscriber acked
    external_fulfilment_deadline_s: float = 300.0  # EXTERNAL: re-request when unanswered this long
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
    # --- issue 18: several merchant accounts (server/wxpay/accounts.py, docs/going-live.md) ----------
    # The account an order goes to when no rule picks one: "" = `default` if it exists, else the first
    # account directory by name.
    default_account: str = ""
    # Per-product routing: comma-separated `product_id=account` pairs (the BFF's `merchant` hint wins).
    account_routes: str = ""
    # --- issue 19 item 4: signed webhooks (docs/event-feed.md § Webhooks) --------------------------
    webhook_disable_after_days: float = 3.0  # continuous failure this long disables a webhook
    webhook_timeout_s: float = 10.0  # per POST
    webhook_concurrency: int = 4  # subscribers delivered side by side per process
    webhook_backoff_base_s: float = 10.0  # first retry after 5-10 s, doubling ...
    webhook_backoff_max_s: float = 3600.0  # ... up to 30-60 min
    webhook_secret_overlap_h: float = 24.0  # after a rotation the old secret signs too, this long
    # Production refuses plain-http webhook URLs (the body carries order data) except to loopback;
    # true when TLS ends in front of the receiver.
    webhook_allow_http: bool = False

    @property
    def tokens(self) -> dict[str, str]:
        """token -> role, from `role:token` pairs."""
        out: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in self.api_tokens.split(","))):
            role, sep, token = pair.partition(":")
            if not sep or role not in ROLES or not token:
                # Never echo the pair: without its colon, it is the token itself.
                raise ConfigError(
                    "ORDERPAY_API_TOKENS: want comma-separated role:token pairs (bff|admin|feed)"
                )
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


# "off" is not offered: it acknowledges a payment before it is on disk anywhere.
SYNCHRONOUS_COMMIT = ("", "on", "remote_apply", "remote_write", "local")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("auto", "json", "console")
EVENT_LOOPS = ("uvloop", "asyncio")


def _check(settings: Settings) -> None:
    """What can be known wrong before anything starts fails here, in one line naming the variable."""
    settings.tokens  # noqa: B018 - validate early so a bad token list fails at start, not on first call
    if settings.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(
            f"ORDERPAY_LOG_LEVEL: want one of {', '.join(LOG_LEVELS)}; got {settings.log_level!r}"
        )
    check_database_url(settings.database_url)
    if settings.event_loop not in EVENT_LOOPS:
        raise ConfigError(
            f"ORDERPAY_EVENT_LOOP: want one of {', '.join(EVENT_LOOPS)}; got {settings.event_loop!r}"
        )
    if settings.db_synchronous_commit not in SYNCHRONOUS_COMMIT:
        raise ConfigError(
            f"ORDERPAY_DB_SYNCHRONOUS_COMMIT: want one of {', '.join(repr(v) for v in SYNCHRONOUS_COMMIT)};"
            f" got {settings.db_synchronous_commit!r}"
        )
    if settings.database_session_url:
        check_database_url(settings.database_session_url, "ORDERPAY_DATABASE_SESSION_URL")
        if not settings.database_url.startswith(POSTGRES_SCHEMES):
            raise ConfigError(
                "ORDERPAY_DATABASE_SESSION_URL: only with a postgresql:// ORDERPAY_DATABASE_URL"
            )
    _check_webhooks(settings)
    if settings.database_read_url:
        check_database_url(settings.database_read_url, "ORDERPAY_DATABASE_READ_URL", writable=False)
        if not all(
            u.startswith(POSTGRES_SCHEMES) for u in (settings.database_url, settings.database_read_url)
        ):
            raise ConfigError(
                "ORDERPAY_DATABASE_READ_URL: a postgresql:// standby of a postgresql:// primary"
            )
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(
            f"ORDERPAY_LOG_FORMAT: want one of {', '.join(LOG_FORMATS)}; got {settings.log_format!r}"
        )


def _check_webhooks(settings: Settings) -> None:
    for name in ("webhook_timeout_s", "webhook_disable_after_days", "webhook_concurrency"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"ORDERPAY_{name.upper()}: must be above 0")


def check_database_url(url: str, name: str = "ORDERPAY_DATABASE_URL", *, writable: bool = True) -> None:
    """`sqlite:///PATH` (the directory must exist, but for the dev state dir) or `postgresql://...`,
    single or multi-host (`postgresql://USER@H1:P1,H2:P2/DB?target_session_attrs=read-write`; a
    read-only URL may list hosts without it, e.g. `prefer-standby`)."""
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
        _check_postgres_url(name, url, writable=writable)
        return
    raise ConfigError(
        f"{name}: unsupported scheme {parsed.scheme!r} in {redact(url)}; want sqlite:///PATH or "
        "postgresql://USER@HOST:PORT/DB"
    )


TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
WRITABLE_TARGETS = ("read-write", "primary")


def _check_postgres_url(name: str, url: str, *, writable: bool = True) -> None:
    """Every host has a numeric port (or none), a database is named, libpq accepts the rest, and a
    list of hosts says which to pick: without target_session_attrs=read-write libpq would settle for
    the first that answers, a standby included, and every write there would fail."""
    parsed = urlparse(url)
    shown = redact(url)
    hosts = parsed.netloc.rpartition("@")[2].split(",")
    for host in hosts:
        _, colon, port = host.rpartition(":") if not host.endswith("]") else ("", "", "")
        if colon and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f"{name}: {shown} has a bad port {port!r} (want HOST:PORT[,HOST:PORT...])")
    if not parsed.path.strip("/"):
        raise ConfigError(f"{name}: {shown} names no database (postgresql://USER@HOST:PORT/DB)")
    options = dict(parse_qsl(parsed.query))
    target = options.get("target_session_attrs")
    if target is not None and target not in TARGET_SESSION_ATTRS:
        raise ConfigError(
            f"{name}: target_session_attrs={target!r}; want one of {', '.join(TARGET_SESSION_ATTRS)}"
        )
    if writable and len(hosts) > 1 and target not in WRITABLE_TARGETS:
        raise ConfigError(
            f"{name}: {shown} lists {len(hosts)} hosts; add ?target_session_attrs=read-write so libpq "
            "connects to the primary, not the first host that answers"
        )
    from psycopg2.extensions import parse_dsn  # noqa: PLC0415 - libpq's own parser, only for PostgreSQL URLs

    try:
        parse_dsn(url)
    except Exception as exc:  # psycopg2.ProgrammingError: an unknown option, a malformed URI
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{name}: libpq refuses {shown}: {reason}") from exc


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
