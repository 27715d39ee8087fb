"""One raw `grpc.aio` driver for orderpay and the bare echo servers alike (serialised bytes in and
out, the bearer token and a request id as metadata), the HTTP driver for B3's bare handler, and the
server-CPU meter every case reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
import grpc
import psycopg2

from clients.bench.echo import ECHO_METHOD
from clients.bench.procs import Proc, backend_cpu_s, postgres_cpu_s
from clients.calls import new_id, request_metadata
from clients.channel import make_aio_channel
from clients.loadtest.harness import Plan, Recorder, Summary, drive
from clients.loadtest.notifications import SignedNotification
from clients.loadtest.scenarios import LoadConfig, post_notification
from orderpay.v1 import order_service_pb2

CALL_TIMEOUT_S = 10.0
CREATE_ORDER = "/orderpay.v1.OrderService/CreateOrder"
# What a CreateOrder request weighs on the wire, so the echo carries a comparable payload.
ECHO_PAYLOAD = order_service_pb2.CreateOrderRequest(
    request_id="k-0123456789-1234", user_id="lt-0123456789-1234", product_id="vip-month", quantity=1
).SerializeToString()
Payload = Callable[[int], bytes]  # work item index -> request bytes
Answer = Callable[[int, bytes], None]  # work item index, response bytes
_T = TypeVar("_T")


async def drive_grpc_raw(
    name: str,
    targets: str | tuple[str, ...],
    token: str,
    plan: Plan,
    *,
    method: str = ECHO_METHOD,
    payload: Payload = lambda _index: ECHO_PAYLOAD,
    on_answer: Answer | None = None,
    sequential: int = 1,
    burst: int = 1,
) -> Summary:
    """Per work item: `sequential` rounds (B4's flow makes three calls), each `burst` calls at once
    (B2's duplicates of one key). Several targets are used round-robin, one channel each."""
    channels = [make_aio_channel(target) for target in ((targets,) if isinstance(targets, str) else targets)]
    stubs: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
        channel.unary_unary(method) for channel in channels
    ]

    async def call(index: int, body: bytes, copy: int) -> None:
        metadata = request_metadata(token, new_id())
        # Copies of one item go to different targets in turn: a key's duplicates race across processes.
        answer = await stubs[(index + copy) % len(stubs)](body, timeout=CALL_TIMEOUT_S, metadata=metadata)
        if on_answer is not None:
            on_answer(index, answer)

    async def work(index: int, recorder: Recorder) -> None:
        body = payload(index)
        for _ in range(sequential):
            await asyncio.gather(*(recorder.timed(call(index, body, copy)) for copy in range(burst)))

    try:
        return await drive(name, work, plan)
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))


async def drive_grpc_echo(
    name: str, targets: str | tuple[str, ...], token: str, plan: Plan, *, sequential: int = 1, burst: int = 1
) -> Summary:
    return await drive_grpc_raw(name, targets, token, plan, sequential=sequential, burst=burst)


def create_order_payload(config: LoadConfig) -> Payload:
    """CreateOrder bytes for work item `index`: the load tester's user and key naming (invariants)."""

    def payload(index: int) -> bytes:
        return order_service_pb2.CreateOrderRequest(
            request_id=config.key(index), user_id=config.user(index), product_id=config.product_id, quantity=1
        ).SerializeToString()

    return payload


async def drive_http_posts(
    name: str, url: str, notes: list[SignedNotification], plan: Plan, *, burst: int
) -> Summary:
    """POST signed notifications (round-robin over `notes`), `burst` copies at once each."""
    connector = aiohttp.TCPConnector(limit=plan.concurrency * burst)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def work(index: int, recorder: Recorder) -> None:
            note = notes[index % len(notes)]
            await asyncio.gather(
                *(recorder.timed(post_notification(session, url, note)) for _ in range(burst))
            )

        return await drive(name, work, plan)


@dataclass(frozen=True)
class Cpu:
    """CPU seconds the measured processes used during one run (summed over them)."""

    seconds: float
    postgres_s: float | None = None  # the backends serving the bench's own database
    postgres_all_s: float | None = None  # every local `postgres` process (other databases' too)

    def per_call_us(self, calls: int) -> float | None:
        return round(self.seconds * 1e6 / calls, 1) if calls else None

    def postgres_per_call_us(self, calls: int) -> float | None:
        return None if self.postgres_s is None or not calls else round(self.postgres_s * 1e6 / calls, 1)

    def postgres_all_per_call_us(self, calls: int) -> float | None:
        seconds = self.postgres_all_s
        return None if seconds is None or not calls else round(seconds * 1e6 / calls, 1)


async def metered(procs: Sequence[Proc], run: Awaitable[_T], *, postgres: str = "") -> tuple[_T, Cpu]:
    """Await `run`; the CPU the processes spent meanwhile, and with `postgres` (a database URL) the CPU
    of the PostgreSQL backends connected to that database (those that connect during the run count
    from their start) and, as an upper bound, of every local `postgres` process: on a shared server
    the latter counts other databases' work too."""
    before = sum(proc.cpu_s() for proc in procs)
    pg_all_before = postgres_cpu_s() if postgres else None
    own_before = backend_cpu_s(database_backends(postgres)) if postgres else {}
    result = await run
    used = sum(proc.cpu_s() for proc in procs) - before
    if not postgres:
        return result, Cpu(used)
    own_after = backend_cpu_s(database_backends(postgres))
    own = sum(cpu - own_before.get(pid, 0.0) for pid, cpu in own_after.items())
    pg_all_after = postgres_cpu_s()
    pg_all = None if pg_all_before is None or pg_all_after is None else pg_all_after - pg_all_before
    return result, Cpu(used, own if own_after else None, pg_all)


def database_backends(database_url: str) -> list[int]:
    """The pids of the backends connected to this database (pg_stat_activity)."""
    name = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    connection = psycopg2.connect(database_url, connect_timeout=3)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
            )
            return [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()
