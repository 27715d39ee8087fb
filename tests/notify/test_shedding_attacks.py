"""The 2026-12 audit's H1 drills against the real sidecar listener: a chunk terminator inside a chunk,
a 13-digit Content-Length, a Content-Length above the body cap, and one peer filling the connection cap.

Real sockets on loopback against `serve_app` with the real notify app and a real database. The
attackers connect from other loopback addresses (127.0.0.2, 127.0.0.3: Linux routes all of
127.0.0.0/8 to `lo`), the genuine WeChat notifications from 127.0.0.1. Waits are deadline-bounded
polls; the assertions are about behaviour (closed, answered 204), never about how fast.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from server.notify.app import make_notify_app
from server.service.notifications import NotificationService
from server.serving.http import serve_app
from server.serving.shedding import ConnectionLimits
from tests.notify.rows import NotificationRows
from tests.support.wechat import WeChatNotifier, paid_resource

MAX_BODY = 16 * 1024
# Deadlines long enough that a held connection is still held while the genuine requests run.
LIMITS = ConnectionLimits(
    max_connections=40, header_timeout_s=3.0, body_timeout_s=3.0, idle_timeout_s=6.0, max_body_bytes=MAX_BODY
)
CHUNKED_TRICK = (
    b"POST /wxpay/notify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfff0\r\n0\r\n\r\n"
)
LONG_LENGTH_TRICK = (
    b"POST /wxpay/notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 0000000065000\r\n\r\n{"
)
KEEP_GOING = b"A\r\n\r\n"  # what the audit's client sent every 7 s to look like a new request head


@pytest.fixture
async def sidecar(service: NotificationService, store: NotificationRows) -> AsyncIterator[int]:
    app = make_notify_app(service, max_body_bytes=MAX_BODY, ready_check=store.ping)
    runner, port = await serve_app(app, "127.0.0.1", 0, grace_s=1.0, limits=LIMITS)
    yield port
    await runner.cleanup()


async def _connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _closed_by_server(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, within_s: float
) -> bool:
    """Keep feeding the trick's filler; True once the server has closed the connection."""
    try:
        async with asyncio.timeout(within_s):
            while True:
                try:
                    writer.write(KEEP_GOING)
                    await writer.drain()
                except ConnectionError:
                    return True
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.3):
                        data = await reader.read(4096)
                        if not data:
                            return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def _genuine(port: int, notifier: WeChatNotifier, rid: str, n: int) -> int:
    delivery = notifier.deliver(paid_resource(f"T{rid}{n}", 100))
    reader, writer = await _connect(port, "127.0.0.1")
    try:
        head = b"".join(f"{name}: {value}\r\n".encode() for name, value in delivery.headers.items())
        writer.write(
            b"POST /wxpay/notify HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            + head
            + b"Content-Length: %d\r\n\r\n" % len(delivery.body)
            + delivery.body
        )
        await writer.drain()
        answer = await reader.read()
        return int(answer.split(b" ", 2)[1]) if answer else 0
    finally:
        writer.close()


@pytest.mark.parametrize("trick", [CHUNKED_TRICK, LONG_LENGTH_TRICK], ids=["chunk-end", "13-digit-length"])
async def test_a_framing_trick_does_not_hold_a_connection_past_its_deadline(
    sidecar: int, trick: bytes
) -> None:
    reader, writer = await _connect(sidecar, "127.0.0.2")
    try:
        writer.write(trick)
        await writer.drain()
        budget = LIMITS.header_timeout_s + LIMITS.body_timeout_s + 15.0
        assert await _closed_by_server(reader, writer, budget)
    finally:
        writer.close()


async def test_a_content_length_above_the_body_cap_is_refused_before_the_body_is_read(sidecar: int) -> None:
    reader, writer = await _connect(sidecar, "127.0.0.2")
    try:
        writer.write(
            b"POST /wxpay/notify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n{" % (MAX_BODY + 1)
        )
        await writer.drain()
        async with asyncio.timeout(LIMITS.header_timeout_s):  # well before the request deadline
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413")
        async with asyncio.timeout(LIMITS.header_timeout_s):  # closed, the body never read
            await reader.read()
    finally:
        writer.close()


async def _hold(port: int, source: str, stop: asyncio.Event, trick: bytes, tries: _Tries) -> None:
    """One attacker connection that reconnects whenever it is closed, until `stop`."""
    while not stop.is_set():
        try:
            reader, writer = await _connect(port, source)
        except OSError:
            await asyncio.sleep(0.05)  # the listener's backlog is full; try again
            continue
        try:
            writer.write(trick)
            await writer.drain()
            tries.append(1)
            while not stop.is_set():
                writer.write(KEEP_GOING)
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        if not await reader.read(4096):
                            break
        except ConnectionError:
            pass
        finally:
            writer.close()


async def test_genuine_notifications_are_answered_while_two_peers_try_to_fill_the_cap(
    sidecar: int, notifier: WeChatNotifier, rid: str
) -> None:
    stop, tries = asyncio.Event(), _Tries(2 * LIMITS.max_connections)
    attackers = [
        asyncio.create_task(_hold(sidecar, source, stop, trick, tries))
        for source, trick in (("127.0.0.2", CHUNKED_TRICK), ("127.0.0.3", LONG_LENGTH_TRICK))
        for _ in range(LIMITS.max_connections)
    ]
    try:
        await _under_way(tries)
        statuses = []
        for n in range(10):
            statuses.append(await _genuine(sidecar, notifier, rid, n))
            await asyncio.sleep(0.3)  # spread the genuine requests over the attack
    finally:
        stop.set()
        await asyncio.gather(*attackers)
    assert statuses == [204] * 10


async def test_a_new_peer_is_served_when_many_peers_hold_their_share(
    sidecar: int, notifier: WeChatNotifier, rid: str
) -> None:
    # 8 peers, each at its own cap, would fill the listener without the share kept for new peers
    stop, tries = asyncio.Event(), _Tries(8 * LIMITS.peer_cap)
    attackers = [
        asyncio.create_task(_hold(sidecar, f"127.0.1.{peer}", stop, CHUNKED_TRICK, tries))
        for peer in range(1, 9)
        for _ in range(LIMITS.peer_cap)
    ]
    try:
        await _under_way(tries)
        statuses = [await _genuine(sidecar, notifier, rid, n) for n in range(5)]
    finally:
        stop.set()
        await asyncio.gather(*attackers)
    assert statuses == [204] * 5


def test_limits_derive_a_per_peer_cap_and_a_reserve_from_the_cap() -> None:
    limits = ConnectionLimits(max_connections=512)
    assert 0 < limits.peer_cap < 512
    assert 0 < limits.reserved_for_new_peers < 512
    assert limits.peer_cap * 8 > limits.max_connections - limits.reserved_for_new_peers


class _Tries:
    """Counts attacker connections that sent their trick; `all_in` once each attacker has once."""

    def __init__(self, attackers: int) -> None:
        self.count, self.attackers, self.all_in = 0, attackers, asyncio.Event()

    def append(self, _one: int) -> None:
        self.count += 1
        if self.count >= self.attackers:
            self.all_in.set()


async def _under_way(tries: _Tries) -> None:
    async with asyncio.timeout(30):
        await tries.all_in.wait()
