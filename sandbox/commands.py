"""`orderpay keys init` and `orderpay sandbox`: the sandbox's part of the CLI (heavy imports stay lazy)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this part's sub-commands to the root parser."""
    _register_keys(sub)
    _register_sandbox(sub)


def _register_keys(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="dev credentials (throwaway keys)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    init = keys_sub.add_parser("init", help="write a fresh credentials bundle (SPEC §6)")
    init.add_argument("--dir", type=Path, required=True, help="directory to write the bundle into")
    init.add_argument("--force", action="store_true", help="replace an existing bundle")
    init.set_defaults(func=_keys_init)


def _register_sandbox(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("sandbox", help="run the fake WeChat Pay APIv3 gateway")
    parser.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT (port 0 = ephemeral)")
    # Required to serve; checked in the handler so that `orderpay sandbox trigger …` (issue 13) parses.
    parser.add_argument("--credentials-dir", type=Path, help="bundle from `keys init` (required to serve)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies retry/fault delays")
    parser.add_argument("--auto-pay-delay", type=float, default=None, help="pay every prepay after S seconds")
    parser.add_argument("--seed", type=int, default=None, help="seed for fault injection")
    parser.add_argument("--notify-sign-mode", choices=("pubkey", "cert"), default="pubkey")
    parser.add_argument("--port-file", type=Path, default=None, help="write the bound port here")
    parser.add_argument("--verbose", action="store_true", help="log requests and notification attempts")
    parser.set_defaults(func=_sandbox)


def _keys_init(args: argparse.Namespace) -> int:
    from sandbox.keys import BundleExistsError, init_bundle  # noqa: PLC0415 - keep `--help` fast

    try:
        info = init_bundle(args.dir, force=args.force)
    except BundleExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote credentials bundle to {args.dir} (mchid {info['mchid']}, appid {info['appid']})")
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from sandbox.runner import run_cli  # noqa: PLC0415 - keep `--help` fast

    if args.credentials_dir is None:
        print("error: orderpay sandbox: --credentials-dir is required", file=sys.stderr)
        return 2
    host, _, port = args.listen.rpartition(":")
    return run_cli(
        host=host or "127.0.0.1",
        port=int(port),
        credentials_dir=args.credentials_dir,
        time_scale=args.time_scale,
        auto_pay_delay_s=args.auto_pay_delay,
        seed=args.seed,
        notify_sign_mode=args.notify_sign_mode,
        port_file=args.port_file,
        verbose=args.verbose,
    )
