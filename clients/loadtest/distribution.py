"""The shapes behind the percentiles: a latency histogram and throughput over time, for JSON and plots.

Buckets are fixed and logarithmic (five per decade, 0.1 ms to 100 s), so two runs' histograms line up
bucket for bucket; only the empty buckets at either end are left out. The timeline cuts a run into at
most `MAX_INTERVALS` equal slices and counts the calls that finished in each, successes and failures
apart, so a stall or a burst of errors shows where it happened.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

PER_DECADE = 5
LOWEST_EXPONENT, HIGHEST_EXPONENT = -1, 5  # 10^-1 ms .. 10^5 ms
EDGES_MS: tuple[float, ...] = tuple(
    round(10 ** (k / PER_DECADE), 6)
    for k in range(LOWEST_EXPONENT * PER_DECADE, HIGHEST_EXPONENT * PER_DECADE + 1)
)
MAX_INTERVALS = 60
NICE_STEPS_S = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0)


@dataclass(frozen=True)
class Bucket:
    """Calls with `ge_ms <= latency < lt_ms` (the first bucket also holds anything faster)."""

    ge_ms: float
    lt_ms: float
    count: int


@dataclass(frozen=True)
class Interval:
    """Calls that finished in `[t_s, t_s + width_s)` after the run started."""

    t_s: float
    width_s: float
    ok: int
    errors: int

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.width_s


def histogram(latencies_s: Sequence[float]) -> list[Bucket]:
    """Counts per fixed bucket, from the first non-empty bucket to the last one."""
    counts = [0] * (len(EDGES_MS) + 1)  # [slot i] = edges[i-1] <= ms < edges[i]; the last slot is overflow
    for seconds in latencies_s:
        counts[bisect.bisect_right(EDGES_MS, seconds * 1000)] += 1
    counts[1] += counts[0]  # below 0.1 ms: folded into the first bucket, which says "ge 0"
    counts[-2] += counts[-1]  # 100 s or more: folded into the last bucket
    used = [i for i in range(1, len(EDGES_MS)) if counts[i]]
    if not used:
        return []
    return [
        Bucket(0.0 if i == 1 else EDGES_MS[i - 1], EDGES_MS[i], counts[i])
        for i in range(used[0], used[-1] + 1)
    ]


def timeline(ok_at_s: Sequence[float], failed_at_s: Sequence[float], elapsed_s: float) -> list[Interval]:
    """Successes and failures per slice of the run; times are seconds since the run started."""
    if elapsed_s <= 0 or not (ok_at_s or failed_at_s):
        return []
    width = next((step for step in NICE_STEPS_S if elapsed_s / step <= MAX_INTERVALS), NICE_STEPS_S[-1])
    slices = max(1, math.ceil(elapsed_s / width))
    ok, failed = [0] * slices, [0] * slices
    for times, counts in ((ok_at_s, ok), (failed_at_s, failed)):
        for t in times:
            counts[min(slices - 1, max(0, int(t / width)))] += 1
    return [Interval(round(i * width, 3), width, ok[i], failed[i]) for i in range(slices)]
