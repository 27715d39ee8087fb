"""`ORDERPAY_CLOCK=sandbox` (dev only): orderpay's clock follows the sandbox's `GET /sandbox/v1/clock`
(`{"now": RFC 3339}`), so advancing the sandbox clock fires expiry, the reconciler and the bill day
end to end.

The clock is read on every use case, so it is never an HTTP call: a daemon thread polls the sandbox
and keeps the offset from local time; `now()` is local time plus that offset. Refused unless the
gateway is on loopback (a real WeChat Pay has no such endpoint, and production must not follow one).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import httpx
import structlog

from server.config import ConfigError, Settings
from server.domain.clock import Clock, utc_now
from server.loopback import is_loopback

log = structlog.get_logger("orderpay.clock")
CLOCK_PATH = "/sandbox/v1/clock"
POLL_S = 0.25


class SandboxClock:
    def __init__(self, base_url: str, *, poll_s: float = POLL_S, local: Clock = utc_now) -> None:
        self._url = base_url.rstrip("/") + CLOCK_PATH
        self._poll_s = poll_s
        self._local = local
        self._offset = timedelta(0)
        self._stopped = threading.Event()
        self._http = httpx.Client(timeout=2.0)
        try:
            self.refresh()  # fail fast: a sandbox without the endpoint is a configuration error
        except BaseException:
            self._http.close()
            raise
        self._thread = threading.Thread(target=self._run, name="sandbox-clock", daemon=True)
        self._thread.start()

    def __call__(self) -> datetime:
        return self._local() + self._offset

    def refresh(self) -> None:
        answer = self._http.get(self._url)
        answer.raise_for_status()
        remote = datetime.fromisoformat(str(answer.json()["now"]).replace("Z", "+00:00"))
        if remote.tzinfo is None:
            remote = remote.replace(tzinfo=UTC)
        offset = remote - self._local()
        if abs((offset - self._offset).total_seconds()) > 1:
            log.info("clock.followed_sandbox", offset_s=round(offset.total_seconds(), 3))
        self._offset = offset

    def stop(self, grace: float = 0.0) -> None:
        del grace
        self._stopped.set()
        self._thread.join(timeout=2)
        self._http.close()

    def _run(self) -> None:
        while not self._stopped.wait(self._poll_s):
            try:
                self.refresh()
            except (httpx.HTTPError, KeyError, ValueError) as exc:  # keep the last offset; say so
                log.warning("clock.sandbox_unreachable", error=type(exc).__name__)


def clock_for(settings: Settings) -> Clock:
    """The clock `ORDERPAY_CLOCK` asks for: `system` (default) or `sandbox` (loopback gateway only)."""
    if settings.clock == "system":
        return utc_now
    if settings.clock != "sandbox":
        raise ConfigError(f"ORDERPAY_CLOCK: want system or sandbox, got {settings.clock!r}")
    gateway = urlparse(settings.wxpay_base_url)
    if gateway.scheme != "http" or not is_loopback(gateway.hostname or ""):
        raise ConfigError(
            "ORDERPAY_CLOCK=sandbox is for dev only: ORDERPAY_WXPAY_BASE_URL must be the sandbox on loopback"
        )
    try:
        return SandboxClock(settings.wxpay_base_url)
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise ConfigError(f"ORDERPAY_CLOCK=sandbox: GET {CLOCK_PATH} on the gateway failed ({exc})") from exc
