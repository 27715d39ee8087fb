"""Rendering the emulated API's answers: JSON bytes, signed headers, Request-ID (research §9)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from aiohttp import web

from sandbox.api.errors import ApiError
from sandbox.engine.state import Sandbox
from sandbox.keys import signing
from sandbox.keys.modes import Signer

JSON_TYPE = "application/json; charset=utf-8"


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def request_id(internal_code: int = 0) -> str:
    return f"{secrets.token_hex(22).upper()}-{internal_code}"


def response_signer(sandbox: Sandbox, request: web.Request) -> Signer:
    """The key mode decides; in most modes a request naming the public-key id gets a public-key
    signature and anything else a certificate one (sandbox/key_modes.py)."""
    return sandbox.keys.response_signer(request.headers.get("Wechatpay-Serial"))


def signed(
    sandbox: Sandbox, request: web.Request, status: int, body: Any | None, internal_code: int = 0
) -> web.Response:
    """Every emulated answer but a failed-authentication 401 is signed, 204 (empty body) included."""
    raw = b"" if body is None else dumps(body)
    nonce = secrets.token_hex(16)
    timestamp = str(int(sandbox.clock.wall().timestamp()))  # wall: see sandbox/clock.py
    signer = response_signer(sandbox, request)
    headers = signing.signed_headers(
        signer.private_key,
        signer.serial,
        raw,
        timestamp=timestamp,
        nonce=nonce,
    )
    headers["Request-ID"] = request_id(internal_code)
    if body is not None:  # the gateway's 204 carries no JSON content type (the SDK then returns b"")
        headers["Content-Type"] = JSON_TYPE
    return web.Response(status=status, body=raw, headers=headers)


def signed_error(sandbox: Sandbox, request: web.Request, error: ApiError) -> web.Response:
    return signed(sandbox, request, error.status, error.body(), error.internal_code)


def unsigned_error(error: ApiError) -> web.Response:
    headers = {"Request-ID": request_id(error.internal_code), "Content-Type": JSON_TYPE}
    return web.Response(status=error.status, body=dumps(error.body()), headers=headers)
