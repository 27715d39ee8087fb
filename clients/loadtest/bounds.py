"""Safety rails: the load tester only talks to loopback and never runs unbounded."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse

MAX_COUNT = 100_000
MAX_CONCURRENCY = 512
MAX_DUPLICATES = 100
MAX_DURATION_S = 600.0


class NotLoopbackError(ValueError):
    """A target, URL or database is not on this machine."""


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_loopback_target(target: str) -> str:
    """`host:port` of a gRPC target; refuses anything but 127.0.0.0/8, ::1 or localhost."""
    host = target.removeprefix("ipv4:").removeprefix("ipv6:").rsplit(":", 1)[0]
    if not is_loopback_host(host):
        raise NotLoopbackError(f"refusing non-loopback target {target!r}: load tests stay on this machine")
    return target


def require_loopback_url(url: str, what: str) -> str:
    """An http(s):// URL or a database URL; SQLite files are local by nature."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return url
    if not is_loopback_host(parsed.hostname or ""):
        raise NotLoopbackError(f"refusing non-loopback {what} {url!r}: load tests stay on this machine")
    return url


def clamp(value: int, low: int, high: int, name: str) -> int:
    if not low <= value <= high:
        raise ValueError(f"--{name} must be between {low} and {high}, got {value}")
    return value


def percent(value: float, name: str) -> float:
    if not 0 <= value <= 100:
        raise ValueError(f"--{name} must be between 0 and 100 (percent), got {value:g}")
    return value


def clamp_duration(seconds: float | None) -> float | None:
    if seconds is None:
        return None
    if not 0 < seconds <= MAX_DURATION_S:
        raise ValueError(f"--duration must be in (0, {MAX_DURATION_S:g}] seconds, got {seconds:g}")
    return seconds
