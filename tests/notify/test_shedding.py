"""Hostile clients on the sidecar listener are shed (slowloris) while genuine requests are answered.

Real sockets on loopback against the real listener (`serve_app`); the limits are shortened
so the drill takes seconds, and every wait is a deadline-bounded poll, never a timing assertion.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from server.serving.http import serve_app
from server.serving.shedding import ConnectionLimits

LIMITS = ConnectionLimits(max_connections=150, header_timeout_s=1.0, body_timeout_s=1.0, idle_timeout_s=2.0)
SLOW_CLIENTS = 100
GENUINE = b'{"id": "genuine"}'


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


@pytest.fixture
async def listener() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_post("/wxpay/notify", _echo)
    runner, port = await serve_app(app, "127.0.0.1", 0, grace_s=1.0, limits=LIMITS)
    yield port
    await runner.cleanup()


def _request(body: bytes, *, close: bool = False) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return (
        b"POST /wxpay/notify HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + connection
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


async def _closed_by_peer(reader: asyncio.StreamReader, within_s: float) -> bool:
    try:
        async with asyncio.timeout(within_s):
            while await reader.read(1024):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


async def _dribble(port: int, payload: bytes, within_s: float) -> bool:
    """Send `payload` one byte every 0.2 s; True when the server closes the connection first."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for byte in payload:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                return True
            if await _closed_by_peer(reader, 0.2):
                return True
        return await _closed_by_peer(reader, within_s)
    finally:
        writer.close()


async def _genuine(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_request(GENUINE, close=True))
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


async def test_slow_heads_and_slow_bodies_are_shed_while_genuine_requests_are_answered(listener: int) -> None:
    slow_head = b"POST /wxpay/notify HTTP/1.1\r\nHost: t\r\nX-Padding: " + b"a" * 200
    slow_body = _request(b"{" + b" " * 1000 + b"}")[:-900]  # the head, then a body that never ends
    budget = LIMITS.header_timeout_s + LIMITS.body_timeout_s + 10.0
    slow = [
        asyncio.create_task(_dribble(listener, slow_head if i % 2 else slow_body, budget))
        for i in range(SLOW_CLIENTS)
    ]
    answers = [await _genuine(listener) for _ in range(20)]
    closed = await asyncio.gather(*slow)
    assert all(answer.startswith(b"HTTP/1.1 200") and answer.endswith(GENUINE) for answer in answers)
    assert closed == [True] * SLOW_CLIENTS


async def test_a_silent_connection_is_closed(listener: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", listener)
    try:
        assert await _closed_by_peer(reader, LIMITS.header_timeout_s + 10.0)
    finally:
        writer.close()


async def test_keep_alive_requests_with_bodies_are_framed_correctly(listener: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", listener)
    try:
        for n in range(5):
            body = b'{"n": %d, "pad": "%s"}' % (n, b"x" * (n * 3000))
            # head and body in separate writes, and two requests pipelined in one
            request = _request(body)
            writer.write(request[:40])
            writer.write(request[40:] + (_request(b"{}") if n == 4 else b""))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert await reader.readexactly(length) == body
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(2) == b"{}"
        # idle between requests longer than the header deadline, shorter than the idle one
        await asyncio.sleep(LIMITS.header_timeout_s * 1.2)  # the point of the test: time passing
        writer.write(_request(b"{}"))
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


async def test_connections_over_the_cap_get_503_and_are_closed() -> None:
    app = web.Application()
    app.router.add_post("/wxpay/notify", _echo)
    limits = ConnectionLimits(max_connections=3, header_timeout_s=30.0)
    runner, port = await serve_app(app, "127.0.0.1", 0, grace_s=1.0, limits=limits)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.read()).startswith(b"HTTP/1.1 503")
        writer.close()
        for _reader, held_writer in held:
            held_writer.close()
            await held_writer.wait_closed()
        # once the held connections are gone, a new one is served again
        answer = await _genuine_when_free(port)
        assert answer.startswith(b"HTTP/1.1 200")
    finally:
        await runner.cleanup()


async def _genuine_when_free(port: int) -> bytes:
    async with asyncio.timeout(10):
        while True:
            answer = await _genuine(port)
            if not answer.startswith(b"HTTP/1.1 503"):
                return answer
            await asyncio.sleep(0.05)  # the server notices the closed connections asynchronously
