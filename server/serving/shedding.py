"""Shedding hostile clients on every HTTP listener: the sidecar, metrics and the console (the slowloris
drill, and the 2026-12 audit's H1: a chunk terminator inside a chunk, a 13-digit Content-Length).

Request boundaries are never inferred from raw bytes here: aiohttp parses every request, and the
guard only needs to know when one starts (the first byte after the previous one was answered) and
when its handler is done (`ConnectionGuard.middleware`, around the body read and the handler). So:
- every request has one absolute deadline, `request_timeout_s` from its first byte: a head not
  complete by then closes the connection; a body still arriving (however it is framed) or a handler
  still running gets 408 and the connection is closed;
- a declared Content-Length above the listener's body cap is answered 413 before a byte is read;
- a connection that says nothing, or sits idle between requests, is closed after the idle deadline;
- the listener admits at most `max_connections`, at most `peer_cap` of them from one peer address,
  and keeps `reserved_for_new_peers` of them for peers holding none (one peer, or a handful, cannot
  fill it). Refused connections are answered 503 and closed at once.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from server.metrics import CONNECTIONS_SHED

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
# After a 408 or 413 the rest of the body is not worth reading: close once the answer is flushed.
_CLOSE_AFTER_ANSWER_S = 1.0
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 512
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    idle_timeout_s: float = 15.0
    max_body_bytes: int = 1024 * 1024
    max_connections_per_peer: int = 0  # 0: a quarter of max_connections
    reserve_for_new_peers: int = 0  # 0: an eighth of max_connections

    @property
    def request_timeout_s(self) -> float:
        """From a request's first byte to its handler's answer: the head's and the body's budgets."""
        return self.header_timeout_s + self.body_timeout_s

    @property
    def peer_cap(self) -> int:
        return self.max_connections_per_peer or max(1, self.max_connections // 4)

    @property
    def reserved_for_new_peers(self) -> int:
        return min(self.reserve_for_new_peers or self.max_connections // 8, self.max_connections - 1)


class _State(enum.Enum):
    WAITING = "idle_timeout"  # between requests (or before the first): the idle deadline runs
    READING = "header_timeout"  # a request's first byte arrived; aiohttp has not handed it over yet
    HANDLING = "request_timeout"  # the middleware owns the request's deadline


class ConnectionGuard:
    """Counts live connections (in total and per peer), wraps each one, and bounds each request."""

    def __init__(self, limits: ConnectionLimits, tls: ssl.SSLContext | None = None) -> None:
        self.limits, self.tls = limits, tls
        self.active = 0
        self._per_peer: dict[str, int] = {}
        self._connections: dict[asyncio.BaseTransport, _GuardedProtocol] = {}
        self._inner: web.Server | None = None

    def serve(self, inner: web.Server) -> None:
        self._inner = inner

    def __call__(self) -> asyncio.Protocol:
        if self._inner is None:
            raise RuntimeError("the guard serves nothing yet")
        return _GuardedProtocol(self, self._inner())

    def admit(self, peer: str) -> str | None:
        """None when a connection from `peer` may be served, else why not."""
        limits, held = self.limits, self._per_peer.get(peer, 0)
        if self.active >= limits.max_connections:
            return "capacity"
        if held >= limits.peer_cap:
            return "peer_capacity"
        if held and self.active >= limits.max_connections - limits.reserved_for_new_peers:
            return "reserved_for_new_peers"
        self.active += 1
        self._per_peer[peer] = held + 1
        return None

    def release(self, peer: str) -> None:
        self.active -= 1
        held = self._per_peer.pop(peer, 1) - 1
        if held:
            self._per_peer[peer] = held

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """The request's deadline around its body read and its handler; oversized bodies refused unread."""
        connection = self._connections.get(request.transport) if request.transport is not None else None
        if connection is None:
            return await handler(request)
        deadline = connection.handling()
        closing = True
        try:
            if request.content_length is not None and request.content_length > self.limits.max_body_bytes:
                CONNECTIONS_SHED.labels("body_too_large").inc()
                return web.Response(status=413, text=f"body larger than {self.limits.max_body_bytes} bytes")
            timer = asyncio.timeout_at(deadline)
            try:
                async with timer:
                    response = await handler(request)
            except TimeoutError:
                if not timer.expired():
                    raise
                CONNECTIONS_SHED.labels("request_timeout").inc()
                return web.Response(status=408, text="request not complete in time")
            closing = not request.content.is_eof()  # a body the handler left unread: no lingering
            return response
        finally:
            connection.handled(closing=closing)


class _GuardedProtocol(asyncio.Protocol):
    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard, self._inner = guard, inner
        self._transport: asyncio.Transport | None = None
        self._serving = False  # aiohttp's protocol has its transport (after the TLS handshake, if any)
        self._upgrade: asyncio.Task[None] | None = None
        self._early: list[bytes] = []  # plaintext that arrived between the handshake and start_tls' return
        self._timer: asyncio.TimerHandle | None = None
        self._state = _State.WAITING
        self._deadline = 0.0
        self._peer: str | None = None

    # asyncio.Protocol, forwarded to aiohttp's RequestHandler
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass: check what is used, not the class.
        if not isinstance(transport, asyncio.Transport) and not hasattr(transport, "write"):
            raise TypeError("HTTP listeners are TCP")
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
        refused = self._guard.admit(peer)
        if refused is not None:
            CONNECTIONS_SHED.labels(refused).inc()
            if self._guard.tls is None:  # a TLS client could not read a plaintext answer: just close
                transport.write(_BUSY)
            transport.close()
            return
        self._peer = peer
        # a client that connects and says nothing (no request, or no ClientHello) gets the time of a
        # head, not of an idle keep-alive: counted and timed from the accept, handshake included
        self._arm(self._guard.limits.header_timeout_s)
        if self._guard.tls is None:
            self._serve(transport)
        else:
            transport.pause_reading()  # nothing reaches aiohttp before the handshake
            self._upgrade = asyncio.get_running_loop().create_task(
                self._handshake(transport, self._guard.tls)
            )

    async def _handshake(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        """TLS on top of the counted connection; this protocol stays between it and aiohttp's."""
        try:
            tls = await asyncio.get_running_loop().start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._guard.limits.header_timeout_s,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError):
            raw.abort()
            return
        if tls is None or self._peer is None:  # closed meanwhile
            raw.abort()
            return
        self._serve(tls)

    def _serve(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._guard._connections[transport] = self
        self._serving = True
        self._inner.connection_made(transport)
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._peer is not None:
            self._guard.release(self._peer)
            self._peer = None
            self._guard._connections.pop(self._transport, None)  # type: ignore[arg-type]
            if self._serving:
                self._serving = False
                self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._serving:
            if self._peer is not None and self._upgrade is not None:
                self._early.append(data)
            return
        if self._state is _State.WAITING:
            self._start_request()
            self._arm(self._guard.limits.request_timeout_s)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._serving else None

    def pause_writing(self) -> None:
        if self._serving:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._serving:
            self._inner.resume_writing()

    # the request's life, as far as its deadline needs it
    def _start_request(self) -> None:
        self._state = _State.READING
        self._deadline = asyncio.get_running_loop().time() + self._guard.limits.request_timeout_s

    def handling(self) -> float:
        """aiohttp has parsed a head and calls the app: the middleware takes over the deadline."""
        if self._state is _State.WAITING:  # a pipelined request, already buffered by aiohttp
            self._start_request()
        self._disarm()
        self._state = _State.HANDLING
        return self._deadline

    def handled(self, *, closing: bool) -> None:
        self._state = _State.WAITING
        if closing:
            self._arm(_CLOSE_AFTER_ANSWER_S, close=True)
        else:
            self._arm(self._guard.limits.idle_timeout_s)

    def _arm(self, delay: float, *, close: bool = False) -> None:
        self._disarm()
        reason = "answered" if close else self._state.value
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire, reason, close)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, reason: str, close: bool) -> None:
        self._timer = None
        if self._transport is None or self._transport.is_closing():
            return
        if close:
            self._transport.close()  # flushes the 408/413 first
            return
        CONNECTIONS_SHED.labels(reason).inc()
        self._transport.abort()


class GuardedSite(web.TCPSite):
    """`web.TCPSite` whose connections pass through a ConnectionGuard."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        reuse_port: bool | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, host, port, reuse_port=reuse_port, ssl_context=ssl_context)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner, like TCPSite.start
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner must be set up before its site starts")
        self.guard.serve(server)
        # TLS is the guard's (ConnectionGuard.tls): asyncio's own would count a connection only after
        # its handshake, which a silent client never finishes (60 s by default)
        self._server = await asyncio.get_running_loop().create_server(
            self.guard, self._host, self._port, backlog=self._backlog, reuse_port=self._reuse_port
        )
        self._bound_port = int(self._server.sockets[0].getsockname()[1])
