"""Whether a load run, apart from the database invariants, went well enough to pass.

A run against a dead or failing server must not pass: it fails when no call succeeded, or when the
share of failed calls is above `--max-error-rate` (percent of calls; default 1 %).
"""

from __future__ import annotations

from clients.loadtest.harness import Summary

DEFAULT_MAX_ERROR_RATE_PCT = 1.0


def run_failures(summary: Summary, max_error_rate_pct: float = DEFAULT_MAX_ERROR_RATE_PCT) -> list[str]:
    """Why the run failed, one sentence per reason; empty when it did not."""
    failed = sum(summary.errors.values())
    if summary.calls == 0:
        return ["no call was made"]
    top = ", ".join(f"{reason} {count}" for reason, count in list(summary.errors.items())[:3])
    if summary.ok == 0:
        return [f"nothing succeeded: all {summary.calls} calls failed ({top})"]
    rate = failed / summary.calls * 100
    if rate > max_error_rate_pct:
        return [
            f"{failed} of {summary.calls} calls failed ({rate:.1f}% > {max_error_rate_pct:g}% allowed by "
            f"--max-error-rate; {top})"
        ]
    return []
