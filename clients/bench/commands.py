"""`orderpay bench [--quick] [--json-out PATH]`: what `make bench` runs (SPEC §9, B1–B7)."""

# Heavy imports happen inside the handler so `orderpay --help` stays fast (see clients/cli.py).
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_JSON_OUT = Path("bench-results/latest.json")
WIDE_OUTPUT = 150


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bench` to the root parser."""
    parser = sub.add_parser(
        "bench",
        help="run SPEC §9's benchmarks B1–B7 on local processes, next to bare echo servers",
        description="Starts its own sandbox, server(s) and echo servers on loopback (temp dirs, fresh "
        "SQLite; a fresh PostgreSQL database for B5 when one answers on 127.0.0.1:5432).",
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run, ~1 minute)")
    parser.add_argument("--json-out", type=Path, default=DEFAULT_JSON_OUT, help=f"default {DEFAULT_JSON_OUT}")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a bar is missed")
    parser.add_argument(
        "--only", help="comma-separated case ids to run, e.g. B5,B7 (B7's cross-process half runs with B5)"
    )
    parser.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from clients.bench.model import FULL, QUICK
    from clients.bench.runner import run_bench

    # Off a terminal (CI logs, README), rich would wrap the table at 80 columns; give it room.
    console = Console(width=None if sys.stdout.isatty() else WIDE_OUTPUT)
    sizes = QUICK if args.quick else FULL
    only = {case.strip().upper() for case in args.only.split(",")} if args.only else None
    results = run_bench(sizes, quick=args.quick, json_out=args.json_out, console=console, only=only)
    missed = [case.case_id for case in results if case.passed is False]
    return 1 if args.strict and missed else 0
