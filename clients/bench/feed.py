"""B8: the order event feed (docs/event-feed.md). B1 and B4 run twice in one go, without and with one
subscriber attached (a grpc.aio Watch that records when each event arrives); the figures are the events
delivered per second during B4, the lag from commit to delivery (the event's `occurred_at`, stamped just
before its commit, to its arrival), the server CPU per delivered event (the extra CPU the subscribed B4
cost, over the events), and what attaching a subscriber costs B1 per call."""

from __future__ import annotations

import asyncio
import contextlib
import time

import grpc

from clients.bench.cases import Bench, b1_create_unique, b4_full_flow
from clients.bench.model import CaseResult, Row
from clients.bench.procs import FEED_TOKEN
from orderpay.v1 import events_pb2, events_pb2_grpc

MAX_LAG_P99_MS = 50.0
MAX_SUBSCRIBER_COST = 0.10  # of B1's CPU per call


class Subscriber:
    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = events_pb2_grpc.EventServiceStub(self._channel)
        self._auth = (("authorization", f"Bearer {FEED_TOKEN}"),)
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        name = "bench-b8"
        await self._stub.RegisterSubscriber(
            events_pb2.RegisterSubscriberRequest(subscriber=name), metadata=self._auth
        )
        self._task = asyncio.create_task(self._watch(name))

    async def _watch(self, name: str) -> None:
        acked = 0
        async for response in self._stub.Watch(events_pb2.WatchRequest(), metadata=self._auth):
            event = response.event
            self.lags_ms.append((time.time() - event.occurred_at.ToMicroseconds() / 1e6) * 1000)
            if event.position - acked >= 100:  # acknowledge in batches, as a real subscriber would
                await self._stub.Ack(
                    events_pb2.AckRequest(subscriber=name, position=event.position), metadata=self._auth
                )
                acked = event.position

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._task
        await self._channel.close()


def _cpu_us(case: CaseResult) -> float | None:
    return case.rows[0].cpu_us if case.rows else None


async def b8_event_feed(bench: Bench) -> CaseResult:
    case = CaseResult(
        "B8",
        f"event feed: B1 and B4 ({bench.sizes.b4_orders:,} paid orders) without and with one subscriber",
        f"lag p99 commit→delivery ≤ {MAX_LAG_P99_MS:.0f} ms; "
        f"a subscriber ≤ {MAX_SUBSCRIBER_COST:.0%} of B1's CPU/call",
    )
    b1_off, b4_off = await b1_create_unique(bench), await b4_full_flow(bench)
    subscriber = Subscriber(bench.target)
    await subscriber.start()
    try:
        b1_on = await b1_create_unique(bench)
        delivered_before = len(subscriber.lags_ms)
        started = time.monotonic()
        b4_on = await b4_full_flow(bench)
        await asyncio.sleep(0.5)  # the last commits' events on their way
        elapsed = time.monotonic() - started
    finally:
        await subscriber.stop()
    b4_lags = sorted(subscriber.lags_ms[delivered_before:])
    events = len(b4_lags)
    p99 = b4_lags[min(len(b4_lags) - 1, int(len(b4_lags) * 0.99))] if b4_lags else None
    b1_cost = None
    if _cpu_us(b1_on) is not None and _cpu_us(b1_off):
        b1_cost = (_cpu_us(b1_on) - _cpu_us(b1_off)) / _cpu_us(b1_off)  # type: ignore[operator]
    b4_flows = b4_on.rows[0].summary.items if b4_on.rows and b4_on.rows[0].summary else 0
    extra_cpu_us = None
    if _cpu_us(b4_on) is not None and _cpu_us(b4_off) is not None and events:
        extra_cpu_us = round((_cpu_us(b4_on) - _cpu_us(b4_off)) * b4_flows / events, 1)  # type: ignore[operator]
    case.rows = [
        Row(
            "B1 without a subscriber",
            b1_off.rows[0].summary if b1_off.rows else None,
            b1_off.rows[0].rate if b1_off.rows else None,
            cpu_us=_cpu_us(b1_off),
        ),
        Row(
            "B1 with a subscriber",
            b1_on.rows[0].summary if b1_on.rows else None,
            b1_on.rows[0].rate if b1_on.rows else None,
            cpu_us=_cpu_us(b1_on),
        ),
        Row(
            "B4 without a subscriber (per flow)",
            b4_off.rows[0].summary if b4_off.rows else None,
            b4_off.rows[0].rate if b4_off.rows else None,
            cpu_us=_cpu_us(b4_off),
        ),
        Row(
            "B4 with a subscriber (per flow)",
            b4_on.rows[0].summary if b4_on.rows else None,
            b4_on.rows[0].rate if b4_on.rows else None,
            cpu_us=_cpu_us(b4_on),
        ),
        Row(
            "events delivered during B4 (per second)",
            rate=round(events / elapsed, 1) if elapsed else None,
            value=f"{events} events",
        ),
    ]
    case.notes.append(f"lag commit→delivery p99: {p99:.1f} ms" if p99 is not None else "no event delivered")
    case.notes.append(f"server CPU per delivered event (B4 with − without): {extra_cpu_us} µs")
    case.notes.append(
        f"B1 CPU/call with a subscriber attached: {b1_cost:+.1%}" if b1_cost is not None else "B1 CPU: n/a"
    )
    case.passed = (
        p99 is not None and p99 <= MAX_LAG_P99_MS and b1_cost is not None and b1_cost <= MAX_SUBSCRIBER_COST
    )
    return case
