"""The one async load harness: N workers pull work items until a count or a duration runs out.

Every call is timed and its outcome recorded (the typed error's `reason`, else the exception type),
so the load tester and `orderpay bench` report the same figures the same way for the orderpay server
and for the bare echo servers they are compared with.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from clients.loadtest.distribution import Bucket, Interval, histogram, timeline

T = TypeVar("T")
Work = Callable[[int, "Recorder"], Awaitable[None]]


@dataclass(frozen=True)
class Tick:
    """Where a run is: finished work items, successful calls and failed calls so far."""

    done: int
    ok: int = 0
    errors: int = 0


ProgressHook = Callable[[Tick], None]  # called a few times a second while a run goes on

PROGRESS_INTERVAL_S = 0.2


def reason_of(exc: BaseException) -> str:
    """The server's stable reason for typed client errors, else the exception's type name."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) and reason else type(exc).__name__


class Recorder:
    """Latencies of successful calls and failures by reason, for one run; and when each call ended
    (perf_counter), for throughput over time."""

    def __init__(self) -> None:
        self.latencies_s: list[float] = []
        self.errors: Counter[str] = Counter()
        self.ok_at: list[float] = []
        self.failed_at: list[float] = []
        self.items_done = 0
        self.extra: dict[str, Any] = {}

    async def timed(self, call: Awaitable[T]) -> T | None:
        """Await `call`, record its latency or its failure reason; None when it failed."""
        started = time.perf_counter()
        try:
            result = await call
        except Exception as exc:  # noqa: BLE001 - a load run counts failures by reason, never stops on one
            self.fail(reason_of(exc))
            return None
        self.observe(time.perf_counter() - started)
        return result

    def observe(self, seconds: float) -> None:
        """Record a latency measured elsewhere (e.g. pay → fulfilled), ending now."""
        self.latencies_s.append(seconds)
        self.ok_at.append(time.perf_counter())

    def fail(self, reason: str) -> None:
        self.errors[reason] += 1
        self.failed_at.append(time.perf_counter())


@dataclass(frozen=True)
class Summary:
    """Figures of one run; latencies in milliseconds, throughput in successful calls per second."""

    name: str
    items: int
    calls: int
    ok: int
    errors: dict[str, int]
    elapsed_s: float
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    extra: dict[str, Any] = field(default_factory=dict)
    latency_histogram: list[Bucket] = field(default_factory=list)
    timeline: list[Interval] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(name: str, recorder: Recorder, elapsed_s: float, started_at: float) -> Summary:
    """The figures of a run that started at `started_at` (perf_counter) and took `elapsed_s`."""
    ordered = sorted(recorder.latencies_s)
    ok = len(ordered)
    failed = sum(recorder.errors.values())
    return Summary(
        name=name,
        items=recorder.items_done,
        calls=ok + failed,
        ok=ok,
        errors=dict(recorder.errors.most_common()),
        elapsed_s=round(elapsed_s, 3),
        throughput=round(ok / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        p50_ms=round(percentile(ordered, 0.50) * 1000, 2),
        p95_ms=round(percentile(ordered, 0.95) * 1000, 2),
        p99_ms=round(percentile(ordered, 0.99) * 1000, 2),
        max_ms=round((ordered[-1] if ordered else 0.0) * 1000, 2),
        extra=dict(recorder.extra),
        latency_histogram=histogram(ordered),
        timeline=timeline(
            [t - started_at for t in recorder.ok_at], [t - started_at for t in recorder.failed_at], elapsed_s
        ),
    )


@dataclass(frozen=True)
class Plan:
    """How much load: `count` work items (or until `duration_s`), `concurrency` of them in flight."""

    count: int
    concurrency: int
    duration_s: float | None = None


async def drive(
    name: str,
    work: Work,
    plan: Plan,
    *,
    progress: ProgressHook | None = None,
    recorder: Recorder | None = None,
) -> Summary:
    """Run `work(index, recorder)` for indexes 0.. with `plan.concurrency` workers; summarise."""
    recorder = recorder or Recorder()
    next_index = iter(range(plan.count))
    started = time.perf_counter()
    stop_at = started + plan.duration_s if plan.duration_s else math.inf

    async def worker() -> None:
        for index in next_index:  # one shared iterator: each index is handed out once
            if time.perf_counter() >= stop_at:
                return
            await work(index, recorder)
            recorder.items_done += 1

    ticker = asyncio.create_task(_tick(recorder, progress)) if progress else None
    try:
        await asyncio.gather(*(worker() for _ in range(max(1, plan.concurrency))))
    finally:
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
    elapsed = time.perf_counter() - started
    if progress:
        progress(_tick_of(recorder))
    return summarise(name, recorder, elapsed, started)


async def _tick(recorder: Recorder, progress: ProgressHook) -> None:
    # Polled, not per call: a progress update per call would cost the client CPU the server needs.
    while True:
        progress(_tick_of(recorder))
        await asyncio.sleep(PROGRESS_INTERVAL_S)


def _tick_of(recorder: Recorder) -> Tick:
    return Tick(recorder.items_done, len(recorder.latencies_s), sum(recorder.errors.values()))
