"""Shedding hostile clients on every HTTP listener: the sidecar, metrics and the console (the slowloris
drill).

aiohttp has no header or body read deadline: a client that dribbles one byte at a time holds its
connection forever. `GuardedSite` wraps each connection's protocol and closes it when
- the listener already holds `max_connections` (answered 503 and closed at once),
- a request's head is not complete `header_timeout_s` after its first byte (or after connecting),
- a declared body has not fully arrived `body_timeout_s` after the head,
- it sits idle between requests for longer than `idle_timeout_s`.
Bytes are only counted here, never parsed for meaning: aiohttp still parses and limits every request.
"""

from __future__ import annotations

import asyncio
import enum
import re
import ssl
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from server.metrics import CONNECTIONS_SHED

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024  # beyond this aiohttp rejects the request itself; stop buffering
_CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\d{1,12})[ \t]*\r?$", re.I | re.M)
_CHUNKED = re.compile(rb"^transfer-encoding[ \t]*:.*chunked", re.IGNORECASE | re.MULTILINE)
_LAST_CHUNK = b"0\r\n\r\n"
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 512
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    idle_timeout_s: float = 15.0


class _Phase(enum.Enum):
    IDLE = "idle"
    HEAD = "header_timeout"
    BODY = "body_timeout"
    CHUNKED = "chunked_body_timeout"


class ConnectionGuard:
    """A protocol factory around aiohttp's: counts live connections and wraps each one."""

    def __init__(self, inner: web.Server, limits: ConnectionLimits) -> None:
        self._inner, self.limits = inner, limits
        self.active = 0

    def __call__(self) -> asyncio.Protocol:
        return _GuardedProtocol(self, self._inner())


class _GuardedProtocol(asyncio.Protocol):
    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard, self._inner = guard, inner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._phase = _Phase.HEAD
        self._head = bytearray()
        self._body_left = 0
        self._tail = b""  # the last bytes of a chunked body, to find its terminator across reads
        self._admitted = False

    # asyncio.Protocol, forwarded to aiohttp's RequestHandler
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass: check what is used, not the class.
        if not isinstance(transport, asyncio.Transport) and not hasattr(transport, "write"):
            raise TypeError("the sidecar listens on TCP")
        self._transport = cast(asyncio.Transport, transport)
        if self._guard.active >= self._guard.limits.max_connections:
            CONNECTIONS_SHED.labels("capacity").inc()
            transport.write(_BUSY)
            transport.close()
            return
        self._admitted = True
        self._guard.active += 1
        self._arm(_Phase.HEAD)  # a client that connects and says nothing is a slow head too
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted:
            self._admitted = False
            self._guard.active -= 1
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        self._track(data)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # request framing, only as far as deadlines need it
    def _track(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._phase is _Phase.IDLE:
                self._arm(_Phase.HEAD)
            if self._phase is _Phase.HEAD:
                view = self._take_head(view)
            elif self._phase is _Phase.BODY:
                used = min(self._body_left, len(view))
                self._body_left -= used
                view = view[used:]
                if self._body_left == 0:
                    self._arm(_Phase.IDLE)
            else:  # CHUNKED: the body ends with the zero-length chunk; pipelining after it is rare
                joined = self._tail + bytes(view)
                if _LAST_CHUNK in joined:
                    self._arm(_Phase.IDLE)
                self._tail = joined[-len(_LAST_CHUNK) :]
                return

    def _take_head(self, view: memoryview) -> memoryview:
        start = max(0, len(self._head) - len(_HEAD_END) + 1)
        self._head += view
        end = self._head.find(_HEAD_END, start)
        if end < 0:
            if len(self._head) > _MAX_HEAD:
                self._head.clear()  # aiohttp answers 431/400 and closes; keep the deadline running
            return view[len(view) :]
        head = bytes(self._head[: end + len(_HEAD_END)])
        rest = view[len(view) - (len(self._head) - len(head)) :]
        self._head.clear()
        length = _CONTENT_LENGTH.search(head)
        if _CHUNKED.search(head):
            self._tail = b""
            self._arm(_Phase.CHUNKED)
        elif length is not None and int(length.group(1)) > 0:
            self._body_left = int(length.group(1))
            self._arm(_Phase.BODY)
        else:
            self._arm(_Phase.IDLE)
        return rest

    def _arm(self, phase: _Phase) -> None:
        self._disarm()
        self._phase = phase
        limits = self._guard.limits
        delay = {
            _Phase.IDLE: limits.idle_timeout_s,
            _Phase.HEAD: limits.header_timeout_s,
            _Phase.BODY: limits.body_timeout_s,
            _Phase.CHUNKED: limits.body_timeout_s,
        }[phase]
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire, phase)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, phase: _Phase) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            CONNECTIONS_SHED.labels(phase.value).inc()
            self._transport.abort()


class GuardedSite(web.TCPSite):
    """`web.TCPSite` whose connections pass through a ConnectionGuard."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        limits: ConnectionLimits,
        *,
        reuse_port: bool | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, host, port, reuse_port=reuse_port, ssl_context=ssl_context)
        self._limits = limits
        self.guard: ConnectionGuard | None = None

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner, like TCPSite.start
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner must be set up before its site starts")
        self.guard = ConnectionGuard(server, self._limits)
        self._server = await asyncio.get_running_loop().create_server(
            self.guard,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_port=self._reuse_port,
        )
        self._bound_port = int(self._server.sockets[0].getsockname()[1])
