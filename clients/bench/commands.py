"""`orderpay bench [--quick] [--json-out PATH]`: what `make bench` runs (B1–B7, README § Benchmarks)."""

# Heavy imports happen inside the handler so `orderpay --help` stays fast (see clients/cli.py).
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from types import FrameType

DEFAULT_JSON_OUT = Path("bench-results/latest.json")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bench` to the root parser."""
    parser = sub.add_parser(
        "bench",
        help="run the benchmarks B1–B7 (README § Benchmarks) on local processes, next to bare echo servers",
        description="Starts its own sandbox, server(s) and echo servers on loopback (temp dirs, fresh "
        "SQLite; a fresh PostgreSQL database for B5 when one answers on 127.0.0.1:5432).",
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run, ~1 minute)")
    parser.add_argument("--json-out", type=Path, default=DEFAULT_JSON_OUT, help=f"default {DEFAULT_JSON_OUT}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a bar is missed")
    parser.add_argument(
        "--only", help="comma-separated case ids to run, e.g. B5,B7 (B7's cross-process half runs with B5)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="run every case this many times (default %(default)s); figures as min / median / max",
    )
    parser.add_argument(
        "--beside",
        action="append",
        default=[],
        metavar="ORDERPAY_SETTING=VALUE",
        help="also run B1 on a server variant with this setting, side by side (repeatable; default none)",
    )
    parser.add_argument("--warning", action="store_true", help="= --beside ORDERPAY_LOG_LEVEL=warning")
    parser.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    from clients.bench.model import FULL, QUICK
    from clients.bench.runner import Options, run_bench
    from clients.console import stdout_console

    # Off a terminal (CI logs, README) the width is unlimited, so no table is cut (clients.console).
    console = stdout_console()
    sizes = QUICK if args.quick else FULL
    only = {case.strip().upper() for case in args.only.split(",")} if args.only else None
    beside = [*args.beside, *(["ORDERPAY_LOG_LEVEL=warning"] if args.warning else [])]
    pairs = tuple(tuple(item.split("=", 1)) for item in beside if "=" in item)
    options = Options(rounds=max(1, args.rounds), only=only, beside=pairs)
    # A stopped bench (kill, a CI timeout) must still stop the servers, sandbox and echoes it started:
    # SIGTERM becomes SystemExit so run_bench's `finally` runs, as it does for Ctrl-C.
    signal.signal(signal.SIGTERM, _exit_on_term)
    results = run_bench(sizes, quick=args.quick, json_out=args.json_out, console=console, options=options)
    missed = [case.case_id for case in results if case.passed is False]
    return 1 if args.strict and missed else 0


def _exit_on_term(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
