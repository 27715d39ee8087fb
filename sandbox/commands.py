"""`orderpay keys init` and `orderpay sandbox`: the sandbox's part of the CLI (heavy imports stay lazy)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sandbox.clock_commands import register_clock


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this part's sub-commands to the root parser."""
    _register_sandbox(sub)


def register_keys(keys_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`orderpay keys init`: the dev credentials bundle (throwaway keys)."""
    init = keys_sub.add_parser("init", help="write a fresh dev credentials bundle (sandbox/README.md)")
    init.add_argument("--dir", type=Path, required=True, help="directory to write the bundle into")
    init.add_argument("--force", action="store_true", help="replace an existing bundle")
    init.add_argument(
        "--accounts",
        action="store_true",
        help="several accounts (a directory each): two direct merchants (public-key and certificate"
        " mode) and a provider with two sub-merchants",
    )
    init.set_defaults(func=_keys_init)


def _register_sandbox(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("sandbox", help="run the fake WeChat Pay APIv3 gateway")
    parser.add_argument(
        "--listen", default="127.0.0.1:8090", help="HOST:PORT (default %(default)s; port 0 = ephemeral)"
    )
    parser.add_argument("--credentials-dir", type=Path, help="bundle from `keys init` (required to run)")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiplies retry/fault delays (default %(default)g)"
    )
    parser.add_argument("--auto-pay-delay", type=float, default=None, help="pay every prepay after S seconds")
    parser.add_argument("--seed", type=int, default=None, help="seed for fault injection")
    parser.add_argument(
        "--notify-sign-mode",
        choices=("pubkey", "cert"),
        default="pubkey",
        help="sign notifications with the WeChat Pay public key or a platform certificate"
        " (default %(default)s)",
    )
    parser.add_argument(
        "--key-mode",
        choices=("certificate", "migrating", "public_key", "public_key_only"),
        default=None,
        help="the merchant's WeChat Pay key mode (default: public_key, or as --notify-sign-mode says)",
    )
    parser.add_argument(
        "--migration-ramp",
        type=float,
        default=7 * 24 * 3600.0,
        help="with --key-mode migrating: seconds until every notification uses the public key"
        " (default %(default)g, a week)",
    )
    parser.add_argument("--port-file", type=Path, default=None, help="write the bound port here")
    parser.add_argument("--verbose", action="store_true", help="log requests and notification attempts")
    parser.set_defaults(func=_sandbox)
    register_clock(parser)  # issue 12: `orderpay sandbox clock show|advance|set`


def _keys_init(args: argparse.Namespace) -> int:
    from sandbox.keys.bundle import BundleExistsError, init_bundle  # noqa: PLC0415 - keep `--help` fast

    if args.accounts:
        return _keys_init_accounts(args)
    try:
        info = init_bundle(args.dir, force=args.force)
    except BundleExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote credentials bundle to {args.dir} (mchid {info['mchid']}, appid {info['appid']})")
    return 0


def _keys_init_accounts(args: argparse.Namespace) -> int:
    from sandbox.keys.accounts import init_accounts  # noqa: PLC0415 - keep `--help` fast
    from sandbox.keys.bundle import BundleExistsError  # noqa: PLC0415

    try:
        written = init_accounts(args.dir, force=args.force)
    except BundleExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for info in written:
        number = info.get("mchid") or f"sub_mchid {info.get('sub_mchid')} via {info.get('provider')}"
        print(f"{args.dir}/{info['name']}: {info['kind']} {number}")
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    if args.credentials_dir is None:
        print("orderpay sandbox: --credentials-dir is required", file=sys.stderr)
        return 2
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
        key_mode=args.key_mode,
        migration_ramp_s=args.migration_ramp,
        port_file=args.port_file,
        verbose=args.verbose,
    )
