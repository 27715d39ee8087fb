"""`orderpay sandbox clock show|advance DURATION|set TIME`: move a running sandbox's clock (forward only)."""

from __future__ import annotations

import argparse
import os
import re
import sys

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'26h', '90m', '1d2h' or '30s': a unit always (a bare '26' would silently mean seconds, when
    whoever typed it most likely meant hours)."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} needs a unit: {text}s, {text}m, {text}h or {text}d")
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 26h, 90m, 1d2h)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def register_clock(sandbox_parser: argparse.ArgumentParser) -> None:
    """Add `clock` under `orderpay sandbox` (which, without it, runs the sandbox)."""
    actions = sandbox_parser.add_subparsers(dest="sandbox_command", metavar="[clock]")
    clock = actions.add_parser("clock", help="read or move a running sandbox's clock")
    moves = clock.add_subparsers(dest="clock_command", required=True, metavar="ACTION")
    show = moves.add_parser("show", help="print the sandbox's now")
    show.set_defaults(func=_show)
    advance = moves.add_parser("advance", help="move forward, e.g. 26h")
    advance.add_argument("duration", type=parse_duration, help="how far: 90s, 15m, 26h or 2d")
    advance.set_defaults(func=_advance)
    to = moves.add_parser("set", help="jump forward to an RFC 3339 time")
    to.add_argument("when", help="the new now, RFC 3339 (e.g. 2026-11-26T10:00:00+08:00)")
    to.set_defaults(func=_set)
    for action in (show, advance, to):
        action.add_argument(
            "--url",
            default=os.environ.get("ORDERPAY_WXPAY_BASE_URL", "http://127.0.0.1:8090"),
            help="the sandbox (default: $ORDERPAY_WXPAY_BASE_URL or http://127.0.0.1:8090)",
        )


def _call(args: argparse.Namespace, body: dict[str, object] | None) -> int:
    import httpx  # noqa: PLC0415 - keep `--help` fast

    url = f"{args.url.rstrip('/')}/sandbox/v1/clock"
    try:
        response = httpx.get(url, timeout=5) if body is None else httpx.post(url, json=body, timeout=5)
    except httpx.HTTPError as exc:
        print(f"orderpay: sandbox at {args.url} is unreachable: {exc}", file=sys.stderr)
        return 2
    data = response.json()
    if response.is_error:
        print(f"orderpay: {data.get('message', response.text)}", file=sys.stderr)
        return 2
    print(f"sandbox now {data['now']} (offset {data['offset_s'] / 3600:+.2f} h from the wall clock)")
    return 0


def _show(args: argparse.Namespace) -> int:
    return _call(args, None)


def _advance(args: argparse.Namespace) -> int:
    return _call(args, {"advance_s": args.duration})


def _set(args: argparse.Namespace) -> int:
    return _call(args, {"now": args.when})
