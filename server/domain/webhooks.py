"""Signed webhooks for event-feed subscribers (issue 19 item 4): the rules, with no I/O.

A subscriber may name one URL; every feed event is POSTed to it in feed order, at least once, and a
2xx acknowledges it. The signature is Stripe's scheme: HMAC-SHA256 over `timestamp + "." + body`
with the subscriber's secret, so a receiver checks it in a few lines (docs/event-feed.md § Webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from server.domain.errors import FieldViolation, WebhookUrlRefusedError
from server.loopback import is_loopback

TIMESTAMP_HEADER = "Orderpay-Timestamp"
SIGNATURE_HEADER = "Orderpay-Signature"
POSITION_HEADER = "Orderpay-Event-Position"
TYPE_HEADER = "Orderpay-Event-Type"
MAX_URL = 2048
MAX_ERROR = 255


class WebhookState(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"  # failed continuously for too long, or switched off; nothing is sent


@dataclass(frozen=True)
class UrlPolicy:
    production: bool  # ORDERPAY_ENV=production, or a WeChat Pay gateway that is not on loopback
    allow_http: bool = False  # ORDERPAY_WEBHOOK_ALLOW_HTTP: TLS ends in front of the receiver


def check_webhook_url(url: str, policy: UrlPolicy) -> str:
    """The URL to POST to, or WEBHOOK_URL_REFUSED saying why."""
    why = _url_problem(url, policy)
    if why:
        raise WebhookUrlRefusedError([FieldViolation("webhook_url", why)])
    return url


def _url_problem(url: str, policy: UrlPolicy) -> str:  # noqa: PLR0911 - one return per rule
    """Plain http is refused in production except to loopback: the body carries order data (users,
    amounts, what was bought), and a signature proves who sent it, not who else read it."""
    parts = urlsplit(url)
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        return f"at most {MAX_URL} characters, no spaces or control characters"
    if parts.scheme not in {"http", "https"}:
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "names no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (the URL is shown in the console and the logs)"
    if parts.fragment:
        return "must not have a #fragment (it is never sent)"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "has a bad port"
    plain = parts.scheme == "http" and policy.production and not policy.allow_http
    if plain and not is_loopback(parts.hostname):
        return (
            "must be https:// in production: the body carries order data (http only to loopback, "
            "or set ORDERPAY_WEBHOOK_ALLOW_HTTP=true when TLS ends in front of the receiver)"
        )
    return ""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `f"{timestamp}."` + body under the secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: tuple[str, ...], timestamp: int, body: bytes) -> str:
    """`v1=<hex>`, one per signing secret (two during a rotation's overlap): a receiver accepts the
    request when any of them matches the secret it holds."""
    return ",".join(f"v1={signature(secret, timestamp, body)}" for secret in secrets)


@dataclass(frozen=True)
class DeliveryPolicy:
    backoff_base: timedelta = timedelta(seconds=10)
    backoff_max: timedelta = timedelta(hours=1)
    disable_after: timedelta = timedelta(days=3)  # of continuous failure
    secret_overlap: timedelta = timedelta(hours=24)  # a rotated-out secret keeps signing this long

    def backoff(self, failures: int, rand: Callable[[], float]) -> timedelta:
        """Exponential, capped, with "equal jitter": at least half the step, so receivers that fail
        together (one outage) are not retried together, and a retry never comes at once."""
        step: timedelta = self.backoff_base * 2 ** min(max(failures - 1, 0), 30)
        ceiling = min(self.backoff_max, step)
        return ceiling * (0.5 + rand() / 2)


@dataclass(frozen=True)
class Webhook:
    subscriber: str
    url: str
    secret: str
    state: WebhookState = WebhookState.ACTIVE
    previous_secret: str | None = None
    previous_until: datetime | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str = ""
    last_error_at: datetime | None = None
    next_attempt_at: datetime | None = None
    disabled_at: datetime | None = None

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        if self.previous_secret and self.previous_until is not None and now < self.previous_until:
            return (self.secret, self.previous_secret)  # the rotation's overlap
        return (self.secret,)

    def succeeded(self, now: datetime) -> Webhook:
        return replace(
            self, consecutive_failures=0, failing_since=None, last_success_at=now, next_attempt_at=None
        )

    def failed(self, now: datetime, error: str, policy: DeliveryPolicy, rand: Callable[[], float]) -> Webhook:
        """One more failure: retry after the back-off, or disable once failing for `disable_after`."""
        failures = self.consecutive_failures + 1
        since = self.failing_since or now
        failed = replace(
            self,
            consecutive_failures=failures,
            failing_since=since,
            last_error=error[:MAX_ERROR],
            last_error_at=now,
            next_attempt_at=now + policy.backoff(failures, rand),
        )
        if now - since >= policy.disable_after:
            return replace(failed, state=WebhookState.DISABLED, disabled_at=now, next_attempt_at=None)
        return failed

    def enabled(self) -> Webhook:
        """Back on, with a clean slate: the next run delivers from the acknowledged position."""
        return replace(
            self,
            state=WebhookState.ACTIVE,
            consecutive_failures=0,
            failing_since=None,
            next_attempt_at=None,
            disabled_at=None,
        )

    def disabled(self, now: datetime) -> Webhook:
        return replace(self, state=WebhookState.DISABLED, disabled_at=now, next_attempt_at=None)

    def rotated(self, new_secret: str, now: datetime, overlap: timedelta) -> Webhook:
        return replace(self, secret=new_secret, previous_secret=self.secret, previous_until=now + overlap)

    def moved_to(self, url: str) -> Webhook:
        """A new URL is a new receiver: the old one's failures say nothing about it."""
        return replace(self.enabled(), url=url, last_error="", last_error_at=None)
