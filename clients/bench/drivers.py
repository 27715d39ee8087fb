"""The echo drivers: the same harness and plans as the orderpay runs, against the bare servers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import aiohttp
import grpc

from clients.bench.echo import ECHO_METHOD
from clients.calls import new_id, request_metadata
from clients.channel import make_aio_channel
from clients.loadtest.harness import Plan, Recorder, Summary, drive
from clients.loadtest.notifications import SignedNotification
from clients.loadtest.scenarios import post_notification
from orderpay.v1 import order_service_pb2

ECHO_TIMEOUT_S = 10.0
# What a CreateOrder request weighs on the wire, so the echo carries a comparable payload.
ECHO_PAYLOAD = order_service_pb2.CreateOrderRequest(
    request_id="k-0123456789-1234", user_id="lt-0123456789-1234", product_id="vip-month", quantity=1
).SerializeToString()


async def drive_grpc_echo(
    name: str, targets: str | tuple[str, ...], token: str, plan: Plan, *, sequential: int = 1, burst: int = 1
) -> Summary:
    """Per work item: `sequential` rounds (B4's flow makes three calls), each `burst` calls at once
    (B2's duplicates of one key); the bearer token and a request id ride along as with orderpay.
    Several targets are used round-robin, one channel each, like the load tester's clients."""
    channels = [make_aio_channel(target) for target in ((targets,) if isinstance(targets, str) else targets)]
    echoes: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
        channel.unary_unary(ECHO_METHOD) for channel in channels
    ]

    def call(index: int) -> Awaitable[bytes]:
        metadata = request_metadata(token, new_id())
        return echoes[index % len(echoes)](ECHO_PAYLOAD, timeout=ECHO_TIMEOUT_S, metadata=metadata)

    async def work(index: int, recorder: Recorder) -> None:
        for _ in range(sequential):
            await asyncio.gather(*(recorder.timed(call(index)) for _ in range(burst)))

    try:
        return await drive(name, work, plan)
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))


async def drive_http_echo(
    name: str, url: str, notes: list[SignedNotification], plan: Plan, *, burst: int
) -> Summary:
    """POST the same signed notifications, `burst` copies at once each, to the bare aiohttp handler."""
    connector = aiohttp.TCPConnector(limit=plan.concurrency * burst)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def work(index: int, recorder: Recorder) -> None:
            note = notes[index % len(notes)]
            await asyncio.gather(
                *(recorder.timed(post_notification(session, url, note)) for _ in range(burst))
            )

        return await drive(name, work, plan)
