"""Server-side sub-commands: serve, migrate, catalogue load."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the gRPC server (configured by ORDERPAY_* variables)")
    serve.add_argument("--listen", help="override ORDERPAY_GRPC_LISTEN")
    serve.add_argument("--no-catalogue", action="store_true", help="do not load the shipped catalogue")
    serve.set_defaults(func=_serve)

    mig = sub.add_parser("migrate", help="apply pending schema migrations")
    mig.set_defaults(func=_migrate)

    cat = sub.add_parser("catalogue", help="catalogue operations")
    cat_sub = cat.add_subparsers(dest="catalogue_command", required=True)
    load = cat_sub.add_parser("load", help="load products from a JSON file (default: the shipped one)")
    load.add_argument("file", nargs="?", type=Path)
    load.set_defaults(func=_catalogue_load)


def _serve(args: argparse.Namespace) -> int:
    from server.runner import serve  # noqa: PLC0415 - keep `orderpay --help` light

    return serve(listen=args.listen, load_catalogue=not args.no_catalogue)


def _migrate(args: argparse.Namespace) -> int:
    del args
    from server.adapters.db import make_database, migrate  # noqa: PLC0415
    from server.config import load_settings  # noqa: PLC0415

    settings = load_settings()
    applied = migrate(make_database(settings.database_url, pool_size=2))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _catalogue_load(args: argparse.Namespace) -> int:
    from server.bootstrap import build_app  # noqa: PLC0415
    from server.config import load_settings  # noqa: PLC0415

    app = build_app(load_settings())
    report = app.catalogue.load_file(args.file)
    print(f"catalogue: {report.inserted} inserted, {report.updated} updated")
    return 0
