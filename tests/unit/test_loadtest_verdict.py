"""When a load run fails apart from the invariants: nothing succeeded, or too many calls failed."""

from __future__ import annotations

from clients.loadtest.harness import Summary
from clients.loadtest.verdict import run_failures


def summary(ok: int, **errors: int) -> Summary:
    calls = ok + sum(errors.values())
    return Summary("create-unique", calls, calls, ok, errors, 1.0, float(ok), 1.0, 2.0, 3.0, 4.0)


def test_a_clean_run_passes() -> None:
    assert run_failures(summary(100)) == []


def test_the_threshold_is_inclusive() -> None:
    assert run_failures(summary(99, UNAVAILABLE=1), 1.0) == []
    assert run_failures(summary(98, UNAVAILABLE=2), 1.0) == [
        "2 of 100 calls failed (2.0% > 1% allowed by --max-error-rate; UNAVAILABLE 2)"
    ]


def test_nothing_succeeded_fails_whatever_the_threshold() -> None:
    assert run_failures(summary(0, UNAVAILABLE=7, DEADLINE_EXCEEDED=1), 100.0) == [
        "nothing succeeded: all 8 calls failed (UNAVAILABLE 7, DEADLINE_EXCEEDED 1)"
    ]
    assert run_failures(summary(0)) == ["no call was made"]
