"""The latency histogram and the timeline behind `loadtest --json` and `--report`."""

from __future__ import annotations

import itertools

import pytest

from clients.loadtest.distribution import EDGES_MS, MAX_INTERVALS, histogram, timeline


def test_buckets_are_fixed_log_spaced_and_trimmed_to_the_used_range() -> None:
    latencies_s = [0.0012, 0.0013, 0.0095, 0.0101, 0.250]

    buckets = histogram(latencies_s)

    assert sum(b.count for b in buckets) == len(latencies_s)
    assert all(b.ge_ms in EDGES_MS and b.lt_ms in EDGES_MS for b in buckets)
    assert all(a.lt_ms == b.ge_ms for a, b in itertools.pairwise(buckets))
    assert buckets[0].ge_ms <= 1.2 < buckets[0].lt_ms
    assert buckets[-1].ge_ms <= 250 < buckets[-1].lt_ms
    by_range = {(b.ge_ms, b.lt_ms): b.count for b in buckets}
    assert by_range[(6.309573, 10.0)] == 1  # 9.5 ms
    assert by_range[(10.0, 15.848932)] == 1  # 10.1 ms: an edge belongs to the bucket above it


def test_the_extremes_fold_into_the_end_buckets() -> None:
    buckets = histogram([0.00001, 500.0])

    assert (buckets[0].ge_ms, buckets[0].count) == (0.0, 1)  # faster than 0.1 ms
    assert (buckets[-1].lt_ms, buckets[-1].count) == (EDGES_MS[-1], 1)  # 100 s or slower


def test_no_latency_no_buckets() -> None:
    assert histogram([]) == []


@pytest.mark.parametrize("elapsed_s", [0.3, 2.9, 59.0, 600.0])
def test_the_timeline_counts_every_call_once_in_at_most_60_slices(elapsed_s: float) -> None:
    ok = [elapsed_s * i / 100 for i in range(100)]
    failed = [elapsed_s * 0.5, elapsed_s]  # one at the very end lands in the last slice

    intervals = timeline(ok, failed, elapsed_s)

    assert len(intervals) <= MAX_INTERVALS
    assert sum(i.ok for i in intervals) == 100
    assert sum(i.errors for i in intervals) == 2
    assert intervals[-1].t_s < elapsed_s <= intervals[-1].t_s + intervals[-1].width_s + 1e-9
    assert intervals[-1].errors >= 1
