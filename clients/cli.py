"""The `orderpay` console script: one parser, with each part registering its own sub-commands.

Each part keeps its commands next to its code (`server.serve_commands`, `sandbox.commands`,
`clients.commands`) and imports heavy modules only inside the handler, so `orderpay --help`
stays fast and the sandbox never pulls in the server.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from importlib import metadata

COMMAND_MODULES = (
    "server.serve_commands",
    "server.jobs.purge_command",
    "server.recon_commands",  # issue 12: orderpay recon run|show|resolve
    "sandbox.commands",
    "clients.commands",
)


def version() -> str:
    """The installed package's version (pyproject.toml), or "unknown" from a never-installed tree."""
    try:
        return metadata.version("orderpay")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderpay", description="Orders and WeChat Pay payments.")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a start-up failure instead of one line"
    )
    parser.add_argument("--version", action="version", version=f"orderpay {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    keys = sub.add_parser("keys", help="credentials and WeChat Pay keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
        if hasattr(module, "register_keys"):  # `keys` actions live with the part they concern
            module.register_keys(keys_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`orders list --json | head`): what it read is what it wanted. No
        # traceback, and no second error when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a command ended by SIGPIPE (128 + 13)
    return code


if __name__ == "__main__":
    sys.exit(main())
