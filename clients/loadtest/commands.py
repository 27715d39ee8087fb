"""`orderpay loadtest SCENARIO`: bounded, loopback-only load against a running stack, then the
database invariants. Exit codes: 0 all good, 1 an invariant or a client-side check failed,
2 bad arguments or the run could not start.
"""

# Handlers import grpc, aiohttp and rich lazily so `orderpay --help` stays fast (see clients/cli.py).
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import os
from pathlib import Path

from clients.loadtest.bounds import MAX_CONCURRENCY, MAX_COUNT, MAX_DUPLICATES, MAX_DURATION_S
from clients.loadtest.defaults import (
    DEFAULT_DUPLICATES,
    DEFAULT_NOTIFY_URL,
    DEFAULT_SANDBOX_URL,
    DEFAULT_TARGET,
)
from clients.loadtest.verdict import DEFAULT_MAX_ERROR_RATE_PCT

SCENARIO_CHOICES = ("create-unique", "duplicate-storm", "notify-storm", "notify-fuzz", "full-flow")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `loadtest` to the root parser."""
    parser = sub.add_parser(
        "loadtest",
        help="drive a local stack with load, then check the database invariants",
        description="Loopback only and bounded. Exit 1 when an invariant fails, no call succeeds, or more"
        " calls fail than --max-error-rate allows.",
    )
    parser.add_argument(
        "scenario", choices=SCENARIO_CHOICES, metavar="SCENARIO", help=" | ".join(SCENARIO_CHOICES)
    )
    parser.add_argument(
        "--target",
        help="gRPC host:port; comma-separated targets are used round-robin"
        f" (env ORDERPAY_GRPC_TARGET, else {DEFAULT_TARGET})",
    )
    parser.add_argument("--token", help="bearer token (env ORDERPAY_TOKEN, else the dev bff token)")
    parser.add_argument(
        "--sandbox-url", default=DEFAULT_SANDBOX_URL, help="sandbox base URL (full-flow; default %(default)s)"
    )
    parser.add_argument(
        "--notify-url",
        help=f"sidecar notify URL (notify-storm; env ORDERPAY_NOTIFY_URL, else {DEFAULT_NOTIFY_URL})",
    )
    parser.add_argument(
        "--credentials-dir", help="bundle to sign notifications with (env ORDERPAY_CREDENTIALS_DIR)"
    )
    parser.add_argument("--database-url", help="database to check (env ORDERPAY_DATABASE_URL)")
    parser.add_argument("--product", default="vip-month", help="product to order (default vip-month)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help=f"calls in flight (default %(default)s, max {MAX_CONCURRENCY})",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=1000,
        help=f"orders / keys / notifications (default %(default)s, max {MAX_COUNT})",
    )
    parser.add_argument(
        "--duplicates",
        type=int,
        help=f"copies per key or notification (default {_per_scenario(DEFAULT_DUPLICATES)}, else 1;"
        f" max {MAX_DUPLICATES})",
    )
    parser.add_argument("--duration", type=float, help=f"stop after S seconds (max {MAX_DURATION_S:g})")
    parser.add_argument(
        "--auto-pay-delay",
        type=float,
        default=0.05,
        help="seconds before the sandbox pays (full-flow; default %(default)g)",
    )
    parser.add_argument(
        "--fulfil-timeout",
        type=float,
        default=30.0,
        help="seconds an order may take to fulfil (default %(default)g)",
    )
    parser.add_argument(
        "--max-error-rate",
        type=float,
        default=DEFAULT_MAX_ERROR_RATE_PCT,
        metavar="PCT",
        help="fail (exit 1) when more than PCT %% of calls fail, or none succeeds (default %(default)g)",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the database invariant checks")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document instead of tables (with the latency histogram and the timeline)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="FILE.html",
        help="also write a self-contained HTML report: latency histogram, throughput over time (inline SVG)",
    )
    parser.set_defaults(func=_loadtest)


def _per_scenario(defaults: dict[str, int]) -> str:
    return ", ".join(f"{value} for {scenario}" for scenario, value in defaults.items())


def _loadtest(args: argparse.Namespace) -> int:
    from clients.loadtest.main import run_from_args

    return run_from_args(args, os.environ)
