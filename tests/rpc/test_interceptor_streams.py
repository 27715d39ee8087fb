"""Streaming methods (none are public API today) are authenticated like unary ones, never skipped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from server.rpc.auth import TokenAuthenticator
from server.rpc.interceptors import ServerInterceptor
from server.serving.admission import Admission

TOKENS = {"stream-token": "bff"}
METHOD = "/orderpay.v1.Probe/Count"


async def count(request: bytes, context: Any) -> AsyncIterator[bytes]:
    del context
    for number in range(int(request.decode())):
        yield str(number).encode()


async def serve_and_call(metadata: tuple[tuple[str, str], ...]) -> list[bytes]:
    server = grpc.aio.server(interceptors=[ServerInterceptor(TokenAuthenticator(TOKENS), Admission(4))])
    handler = grpc.method_handlers_generic_handler(
        "orderpay.v1.Probe", {"Count": grpc.unary_stream_rpc_method_handler(count)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_stream(METHOD)(b"3", metadata=metadata, timeout=10)
            return [item async for item in call]
    finally:
        await server.stop(None)


def test_a_stream_without_a_token_is_refused() -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        asyncio.run(serve_and_call(()))
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_a_stream_with_a_token_is_served() -> None:
    assert asyncio.run(serve_and_call((("authorization", "Bearer stream-token"),))) == [b"0", b"1", b"2"]
