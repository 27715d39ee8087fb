"""The answers WeChat Pay understands: 204 to acknowledge, `{"code":"FAIL","message":…}` otherwise."""

from __future__ import annotations

from aiohttp import web


def acknowledged() -> web.Response:
    return web.Response(status=204)


def fail(status: int, message: str) -> web.Response:
    return web.json_response({"code": "FAIL", "message": message}, status=status)
