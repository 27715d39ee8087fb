"""Control calls for the key life cycle under `/sandbox/v1/keys` (sandbox/key_modes.py).

Everything takes explicit shares, durations or times, so a drill that takes WeChat days runs in seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from sandbox.config import ConfigError
from sandbox.control.routes import PREFIX, _body, _json
from sandbox.engine.world import book_for


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{name} must be a non-negative number")
    return float(value)


def _share(body: dict[str, Any]) -> float | None:
    share = _number(body, "share")
    if share is not None and share > 1:
        raise ConfigError("share must be within [0, 1]")
    return share


def _time(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{name} must be an RFC 3339 time with offset") from None
    if parsed.tzinfo is None:
        raise ConfigError(f"{name} must carry a UTC offset")
    return parsed


async def show(request: web.Request) -> web.Response:
    return _json(book_for(request).keys.describe())


async def set_mode(request: web.Request) -> web.Response:
    """`{"mode", "ramp_s"?, "share"?}`: `ramp_s` compresses the ~7-day migration; `share` pins it."""
    body = await _body(request)
    keys = book_for(request).keys
    keys.set_mode(str(body.get("mode", "")), ramp_s=_number(body, "ramp_s"), share=_share(body))
    return _json(keys.describe())


async def reverse(request: web.Request) -> web.Response:
    """The reverse switch (self-service since 2025-06): a merchant in public-key mode goes back to
    platform certificates; answers, notifications and /v3/certificates follow at once [inf]."""
    keys = book_for(request).keys
    if keys.mode not in {"public_key", "public_key_only"}:
        raise ConfigError(f"the reverse switch starts in public-key mode; this merchant is in {keys.mode}")
    keys.set_mode("certificate")
    return _json(keys.describe())


async def stop_migration(request: web.Request) -> web.Response:
    keys = book_for(request).keys
    keys.stop_migration()
    return _json(keys.describe())


async def rotate(request: web.Request) -> web.Response:
    """`{"duration_s"?}` compresses the last 10 days of a certificate into that many seconds (listed now,
    ramp over the second half); or explicit `publish_at` / `ramp_start` / `ramp_end`; `share` pins."""
    body = await _body(request)
    keys = book_for(request).keys
    keys.rotate(
        duration_s=_number(body, "duration_s"),
        publish_at=_time(body, "publish_at"),
        ramp_start=_time(body, "ramp_start"),
        ramp_end=_time(body, "ramp_end"),
        share=_share(body),
    )
    return _json(keys.describe())


async def finish_rotation(request: web.Request) -> web.Response:
    """End the rotation now: the old certificate is retired, the successor alone lists and signs."""
    keys = book_for(request).keys
    keys.finish_rotation()
    return _json(keys.describe())


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get(f"{PREFIX}/keys", show)
    router.add_put(f"{PREFIX}/keys/mode", set_mode)
    router.add_post(f"{PREFIX}/keys/migration/stop", stop_migration)
    router.add_post(f"{PREFIX}/keys/reverse", reverse)
    router.add_post(f"{PREFIX}/keys/rotation", rotate)
    router.add_post(f"{PREFIX}/keys/rotation/finish", finish_rotation)
