"""The 2026-12 audit's L2 on a real TLS listener: connections are counted when they are accepted, not
after their TLS handshake, so silent clients that never send a ClientHello cannot pile up past the cap;
a genuine TLS client is served once they are gone."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from aiohttp import web

from server.serving.http import serve_app
from server.serving.shedding import ConnectionLimits
from tests.support.tls import make_pki

CAP = 5
# A header deadline far longer than the test waits: any early close is the cap's doing.
LIMITS = ConnectionLimits(max_connections=CAP, header_timeout_s=60.0, max_connections_per_peer=CAP)


async def _hello(_request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def _closed_soon(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(10):
            while await reader.read(1024):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def _get(port: int, context: ssl.SSLContext) -> bytes:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
        writer.close()
    except (ConnectionError, ssl.SSLError):
        return b""
    return answer


async def test_silent_connections_are_counted_before_the_handshake(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(pki.server_cert, pki.server_key)
    app = web.Application()
    app.router.add_get("/", _hello)
    runner, port = await serve_app(
        app, "127.0.0.1", 0, grace_s=1.0, limits=LIMITS, ssl_context=server_context
    )
    silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4 * CAP)]
    try:
        closed = await asyncio.gather(*(_closed_soon(reader) for reader, _ in silent[CAP:]))
        assert closed == [True] * (3 * CAP)  # over the cap: refused at once, handshake or not
        for _, writer in silent:
            writer.close()
        client_context = ssl.create_default_context(cafile=str(pki.ca))
        async with asyncio.timeout(20):
            while True:  # the server notices the closed connections asynchronously
                answer = await _get(port, client_context)
                if answer.startswith(b"HTTP/1.1 200"):
                    break
                await asyncio.sleep(0.1)
        assert answer.endswith(b"hello")
    finally:
        await runner.cleanup()
