"""Notification delivery the way WeChat does it: encrypted resource, signed POST, retried on schedule.

Every attempt and its answer is recorded. A receiver that is down or hangs only produces failed
attempts; delivery runs in its own tasks and never blocks or stops the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from sandbox.config import RETRY_SCHEDULE_S, Faults, SandboxConfig
from sandbox.engine import traps
from sandbox.engine.clock import SandboxClock
from sandbox.engine.faults import Dice
from sandbox.engine.models import wire_time
from sandbox.keys import signing
from sandbox.keys.bundle import Credentials
from sandbox.keys.modes import Signer

Clock = Callable[[], datetime]
log = logging.getLogger("sandbox.notifier")
REFUND_FIRST_MAX_HOLD_S = 60.0  # refund_before_payment: longest wait for a refund (× time scale)


@dataclass
class Notification:
    """One event; every copy and retry of it carries the same `id` and encrypted resource."""

    id: str
    event_type: str
    summary: str
    original_type: str
    url: str
    out_trade_no: str
    out_refund_no: str | None
    envelope: bytes  # the exact JSON body that is POSTed


@dataclass
class Attempt:
    notification_id: str
    event_type: str
    url: str
    out_trade_no: str
    out_refund_no: str | None
    copy: int  # 0 = the notification itself, 1.. = injected duplicates
    attempt: int  # 1 = first delivery, 2.. = retries on the schedule
    kind: str  # "delivery" | "signtest" (a deliberately mis-signed probe) | "dropped"
    scheduled_offset_s: float  # when the schedule wanted it, from the start of this copy's delivery
    serial: str | None = None  # the Wechatpay-Serial it was signed under (key mode, ramp, rotation)
    offset_s: float = 0.0  # when it actually went out, same origin
    sent_at: str | None = None
    status: int | None = None
    error: str | None = None
    duration_ms: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Dispatch:
    """A handle on one notification in flight; `first_attempt` is set once the first try came back."""

    notification: Notification
    first_attempt: asyncio.Event = field(default_factory=asyncio.Event)


class Notifier:
    def __init__(
        self,
        credentials: Credentials,
        config: Callable[[], SandboxConfig],
        faults_for: Callable[[str | None], Faults],
        dice: Dice,
        clock: SandboxClock,
        signer: Callable[[], Signer],
    ) -> None:
        self._credentials = credentials
        self._signer = signer  # asked per attempt: the key mode, ramp and rotation decide
        self._config = config
        self._faults_for = faults_for
        self._dice = dice
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.notifications: dict[str, Notification] = {}
        self.attempts: list[Attempt] = []
        self._refund_sent: dict[str, asyncio.Event] = {}

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        await self.cancel_all()
        if self._session is not None:
            await self._session.close()

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        await self.cancel_all()
        self.notifications.clear()
        self.attempts.clear()
        self._refund_sent.clear()

    # --- building ---------------------------------------------------------------------------------

    def build(
        self,
        *,
        event_type: str,
        summary: str,
        resource: dict[str, Any],
        url: str,
        out_trade_no: str,
        out_refund_no: str | None = None,
    ) -> Notification:
        original_type = "refund" if event_type.startswith("REFUND.") else "transaction"
        nonce = secrets.token_urlsafe(9)[:12]  # 12 characters: the AES-GCM IV
        faults = self._faults_for(out_trade_no)
        resource = traps.trap_resource(resource, faults)
        plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()
        notification_id = str(uuid.uuid4())
        envelope = {
            "id": notification_id,
            "create_time": wire_time(self._clock()),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": traps.seal(self._credentials.apiv3_key, faults, nonce, original_type, plaintext),
        }
        body = traps.envelope_bytes(envelope, faults)
        return Notification(
            notification_id, event_type, summary, original_type, url, out_trade_no, out_refund_no, body
        )

    # --- dispatching ------------------------------------------------------------------------------

    def submit(self, notification: Notification) -> Dispatch:
        """Start delivering in the background, with this order's faults applied."""
        self.notifications[notification.id] = notification
        dispatch = Dispatch(notification)
        self._spawn(self._deliver(dispatch, self._faults_for(notification.out_trade_no)))
        return dispatch

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _scaled(self, seconds: float) -> float:
        return seconds * self._config().time_scale

    async def _deliver(self, dispatch: Dispatch, faults: Faults) -> None:
        note = dispatch.notification
        try:
            if self._dice.roll(faults.notify_drop_rate):
                self.attempts.append(self._attempt(note, 0, 0, "dropped", 0.0))
                return
            await asyncio.sleep(self._scaled(faults.notify_delay_s))
            await self._hold_for_refund(note, faults)
            await self._deliver_copies(dispatch, faults)
        finally:
            self._first_attempt_done(dispatch)

    def _first_attempt_done(self, dispatch: Dispatch) -> None:
        """Release whoever waits on this notification's first try (a prepay, a held payment notice)."""
        dispatch.first_attempt.set()
        note = dispatch.notification
        if note.event_type.startswith("REFUND."):
            self._refund_event(note.out_trade_no).set()

    async def _hold_for_refund(self, note: Notification, faults: Faults) -> None:
        # Refund-before-payment: the payment notification waits until a refund one for the order went out.
        # Capped, so an order that is never refunded still hears about its payment.
        if faults.refund_before_payment and note.event_type == "TRANSACTION.SUCCESS":
            with contextlib.suppress(TimeoutError):
                hold = self._scaled(REFUND_FIRST_MAX_HOLD_S)
                await asyncio.wait_for(self._refund_event(note.out_trade_no).wait(), timeout=hold)

    def _refund_event(self, out_trade_no: str) -> asyncio.Event:
        return self._refund_sent.setdefault(out_trade_no, asyncio.Event())

    async def _deliver_copies(self, dispatch: Dispatch, faults: Faults) -> None:
        copies = 1 + max(0, faults.duplicate_notifications)
        spacing = self._scaled(faults.duplicate_spacing_s)
        await asyncio.gather(
            *(self._deliver_copy(dispatch, faults, copy, delay=copy * spacing) for copy in range(copies))
        )

    async def _deliver_copy(self, dispatch: Dispatch, faults: Faults, copy: int, *, delay: float) -> None:
        await asyncio.sleep(delay)
        note = dispatch.notification
        started = time.monotonic()
        if faults.signtest_probe and copy == 0:
            await self._send(note, faults, copy, 1, "signtest", 0.0, started)
        offsets = [0.0]
        for gap in RETRY_SCHEDULE_S:
            offsets.append(offsets[-1] + self._scaled(gap))
        for number, offset in enumerate(offsets, start=1):
            await asyncio.sleep(max(0.0, started + offset - time.monotonic()))
            attempt = await self._send(note, faults, copy, number, "delivery", offset, started)
            if copy == 0 and number == 1:
                self._first_attempt_done(dispatch)
            if attempt.succeeded:
                return

    def _attempt(self, note: Notification, copy: int, number: int, kind: str, offset: float) -> Attempt:
        return Attempt(
            note.id, note.event_type, note.url, note.out_trade_no, note.out_refund_no,
            copy, number, kind, round(offset, 4),
        )  # fmt: skip

    async def _send(
        self,
        note: Notification,
        faults: Faults,
        copy: int,
        number: int,
        kind: str,
        offset: float,
        origin: float,
    ) -> Attempt:
        attempt = self._attempt(note, copy, number, kind, offset)
        self.attempts.append(attempt)
        headers = self._headers(note.envelope, faults, probe=kind == "signtest")
        attempt.serial = headers["Wechatpay-Serial"]
        attempt.sent_at = wire_time(self._clock())
        attempt.offset_s = round(time.monotonic() - origin, 4)
        began = time.monotonic()
        try:
            attempt.status = await self._post(note.url, note.envelope, headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            attempt.error = type(exc).__name__ + (f": {exc}" if str(exc) else "")
        attempt.duration_ms = round((time.monotonic() - began) * 1000, 1)
        log.info(
            "notification %s %s copy=%d attempt=%d kind=%s -> %s",
            note.event_type, note.out_trade_no, copy, number, kind, attempt.status or attempt.error,
        )  # fmt: skip
        return attempt

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        if self._session is None:
            raise aiohttp.ClientError("notifier is not running")
        timeout = aiohttp.ClientTimeout(total=self._config().notify_timeout_s)
        async with self._session.post(url, data=body, headers=headers, timeout=timeout) as response:
            await response.read()
            return response.status

    def _headers(self, body: bytes, faults: Faults, *, probe: bool) -> dict[str, str]:
        signer = self._signer()
        timestamp = str(int(self._clock.wall().timestamp()) - faults.stale_timestamp_s)  # wall: see clock.py
        nonce = secrets.token_hex(16)
        headers = signing.signed_headers(
            signer.private_key, signer.serial, body, timestamp=timestamp, nonce=nonce
        )
        if probe:
            headers["Wechatpay-Signature"] = signing.signtest_signature(nonce)
        headers["Content-Type"] = "application/json"
        headers["Request-ID"] = secrets.token_hex(22).upper() + "-0"
        return headers

    # --- inspection -------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Notifications still being delivered or waiting for their next retry."""
        return len(self._tasks)

    def log(self) -> list[dict[str, Any]]:
        return [asdict(attempt) for attempt in self.attempts]
