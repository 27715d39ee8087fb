"""Server-side sub-commands: serve, migrate, catalogue load."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the gRPC server (configured by ORDERPAY_* variables)")
    serve.add_argument("--listen", help="override ORDERPAY_GRPC_LISTEN")
    serve.add_argument(
        "--only",
        action="append",
        choices=("grpc", "notify", "jobs"),
        help="run only these parts (repeatable); default: all three",
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="processes sharing the ports (PostgreSQL only; default 1)"
    )
    serve.add_argument(
        "--ports-file",
        metavar="PATH",
        help="once serving, write the ports really bound (port 0 = any free one) to PATH as JSON",
    )
    serve.set_defaults(func=_serve)

    dev = sub.add_parser(
        "dev",
        help="the whole stack on SQLite: keys, sandbox, server, sidecar, jobs",
        description="What `make run` runs: writes a throwaway credentials bundle under .orderpay/ (once),"
        " migrates and loads the catalogue into .orderpay/orderpay.db, starts the sandbox (fake WeChat"
        " Pay), the gRPC server, the notify sidecar and the jobs, and prints where each listens."
        " Every ORDERPAY_* variable applies; a port of 0 means any free port, and the banner shows the"
        " one bound. Ctrl-C stops everything.",
    )
    dev.add_argument(
        "--sandbox-listen",
        default="127.0.0.1:8090",
        metavar="HOST:PORT",
        help="where the sandbox listens (default %(default)s; port 0 = any free port)",
    )
    dev.add_argument(
        "--ports-file",
        metavar="PATH",
        help="once serving, write the ports really bound (and the sandbox's URL) to PATH as JSON",
    )
    dev.set_defaults(func=_dev)

    mig = sub.add_parser("migrate", help="apply pending schema migrations")
    mig.set_defaults(func=_migrate)

    cat = sub.add_parser("catalogue", help="catalogue operations")
    cat_sub = cat.add_subparsers(dest="catalogue_command", required=True, metavar="ACTION")
    load = cat_sub.add_parser("load", help="load products from a JSON file (default: the shipped one)")
    load.add_argument(
        "file",
        nargs="?",
        type=Path,
        metavar="FILE",
        help="catalogue JSON (default: server/data/catalogue.json)",
    )
    load.set_defaults(func=_catalogue_load)


def register_keys(keys_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = keys_sub.add_parser("show", help="the WeChat Pay keys orderpay verifies with: serials, validity")
    show.add_argument("--dir", type=Path, help="credentials bundle (default: ORDERPAY_CREDENTIALS_DIR)")
    show.add_argument("--offline", action="store_true", help="do not download /v3/certificates")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.add_argument("--account", help="which account (a directory of accounts; default: the default one)")
    show.set_defaults(func=_keys_show)
    check = keys_sub.add_parser(
        "check", help="WeChat's echo self-test (sign, verify, encrypt, decrypt) for one account"
    )
    check.add_argument("account", help="the account's name (its directory in the credentials dir)")
    check.add_argument("--dir", type=Path, help="credentials directory (default: ORDERPAY_CREDENTIALS_DIR)")
    check.set_defaults(func=_keys_check)


def _clean_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A start-up failure (configuration, credentials, port, database) ends the command with one line
    and exit 2, not a traceback; `orderpay --debug` shows the traceback."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except Exception as exc:
            from server.startup import explain  # noqa: PLC0415

            message = None if getattr(args, "debug", False) else explain(exc)
            if message is None:
                raise
            print(f"orderpay: {message}", file=sys.stderr)
            return 2

    return run


@_clean_errors
def _serve(args: argparse.Namespace) -> int:
    from server.lifecycle import serve  # noqa: PLC0415 - keep `orderpay --help` light

    parts = set(args.only) if args.only else None
    _check_ports(args.listen, parts or {"grpc", "notify"}, args.workers)
    return serve(listen=args.listen, parts=parts, workers=args.workers, ports_file=args.ports_file)


def _check_ports(listen: str | None, parts: set[str], workers: int) -> None:
    """Before anything starts, as `dev` does; not when workers share the ports on purpose."""
    from server.config import load_settings  # noqa: PLC0415
    from server.port_check import ensure_free, stack_bindings  # noqa: PLC0415

    settings = load_settings()
    if workers > 1 or settings.reuse_port:
        return
    ensure_free(stack_bindings(settings, parts, listen))


@_clean_errors
def _dev(args: argparse.Namespace) -> int:
    from server.dev import run_dev  # noqa: PLC0415

    return run_dev(args.sandbox_listen, ports_file=args.ports_file)


@_clean_errors
def _migrate(args: argparse.Namespace) -> int:
    del args
    from server.adapters.db import make_database, migrate_with_session  # noqa: PLC0415
    from server.config import load_settings  # noqa: PLC0415

    settings = load_settings()
    db = make_database(settings.database_url, pool_size=2)
    applied = migrate_with_session(db, settings.database_session_url)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


@_clean_errors
def _catalogue_load(args: argparse.Namespace) -> int:
    from server.bootstrap import build_app  # noqa: PLC0415
    from server.config import load_settings  # noqa: PLC0415

    app = build_app(load_settings(), payments_required=False)
    report = app.catalogue.load_file(args.file)
    print(f"catalogue: {report.inserted} inserted, {report.updated} updated")
    return 0


@_clean_errors
def _keys_check(args: argparse.Namespace) -> int:
    from server.wxpay.key_check import check_keys  # noqa: PLC0415

    return check_keys(args.dir, args.account)


def _keys_show(args: argparse.Namespace) -> int:
    from server.wxpay.key_report import show_keys  # noqa: PLC0415

    return show_keys(args.dir, offline=args.offline, as_json=args.json, account=args.account)
