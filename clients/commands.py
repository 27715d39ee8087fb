"""`orderpay orders list|show`: read orders over gRPC with the typed client, for operators.

Target and token come from flags, else `ORDERPAY_GRPC_TARGET` / `ORDERPAY_TOKEN`, else the dev stack's
defaults; they are read in the handler (the CLI edge), never at import.
"""

# Handlers import grpc, rich and the client lazily so `orderpay --help` stays fast (see clients/cli.py).
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

import clients.bench.commands
import clients.events_commands
import clients.loadtest.commands
import clients.ops_commands

if TYPE_CHECKING:
    from clients.client import OrderPayClient

DEFAULT_TARGET = "127.0.0.1:50051"
DEV_ADMIN_TOKEN = "dev-admin-token"  # noqa: S105 - the public dev token of server/config.py
STATUS_CHOICES = ("unpaid", "paid", "partially_refunded", "refunded", "closed")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this part's sub-commands to the root parser."""
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--target", help=f"gRPC host:port (env ORDERPAY_GRPC_TARGET, else {DEFAULT_TARGET})"
    )
    connection.add_argument("--token", help="bearer token (env ORDERPAY_TOKEN, else the dev admin token)")
    connection.add_argument("--timeout", type=float, default=5.0, help="seconds per call (default 5)")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON instead of a table")

    orders = sub.add_parser("orders", help="list and show orders over gRPC")
    actions = orders.add_subparsers(dest="orders_command", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list", parents=[connection, output], help="one page of a user's orders, newest first"
    )
    listing.add_argument("--user-id", required=True, help="whose orders")
    listing.add_argument(
        "--status", choices=STATUS_CHOICES, type=str.lower, help="only orders in this status (default: all)"
    )
    listing.add_argument("--account", default="", help="only orders this merchant account took")
    listing.add_argument("--page-size", type=int, default=20, help="orders per page (default %(default)s)")
    listing.add_argument("--page-token", default="", help="from the previous page's footer")
    listing.set_defaults(func=_list_orders)

    show = actions.add_parser("show", parents=[connection, output], help="every field of one order")
    show.add_argument("order_id", metavar="ORDER_ID", help="e.g. ord_f627ef806fd5a8b11e385dc7")
    show.add_argument("--wait-ms", type=int, help="wait up to this long for fulfilment to leave PENDING")
    show.set_defaults(func=_show_order)

    clients.loadtest.commands.register(sub)
    clients.bench.commands.register(sub)
    clients.ops_commands.register(sub)  # issue 13: `orderpay ops …`
    clients.events_commands.register(sub)  # issue 19: `orderpay events tail|register`

    demo = sub.add_parser("demo", parents=[connection], help="a scripted VIP purchase against `orderpay dev`")
    demo.add_argument(
        "--sandbox-url", default="http://127.0.0.1:8090", help="the sandbox's base URL (default %(default)s)"
    )
    demo.add_argument("--user-id", default="demo-user", help="who buys (default %(default)s)")
    demo.add_argument(
        "--plan",
        default="vip-month",
        help="VIP plan to buy: vip-month, vip-quarter, ... (default %(default)s)",
    )
    demo.add_argument("--manual", action="store_true", help="pay on the cashier page yourself")
    demo.add_argument(
        "--merchant", default=None, help="the merchant account to buy through (default: the server's rule)"
    )
    demo.add_argument(
        "--recon",
        action="store_true",
        help="then refund, move to the next day, reconcile: on a throwaway stack of its own"
        " (--target and --sandbox-url are not used), so the shared sandbox clock stays where it is",
    )
    demo.set_defaults(func=_demo)


def _list_orders(args: argparse.Namespace) -> int:
    from clients.console import print_json, stdout_console
    from clients.errors import OrderPayError
    from clients.reporting import report_error
    from clients.views import order_json, orders_view

    try:
        with _client(args) as client:
            page = client.list_orders(
                args.user_id, args.page_size, args.page_token, args.status, account=args.account
            )
    except OrderPayError as err:
        return report_error(err)
    if args.json:
        print_json({"orders": [order_json(o) for o in page.orders], "next_page_token": page.next_page_token})
        return 0
    console = stdout_console()
    console.print(orders_view(page.orders, console))
    if page.next_page_token:
        console.print(f"next page: --page-token {page.next_page_token}", highlight=False)
    return 0


def _show_order(args: argparse.Namespace) -> int:
    from clients.console import print_json, stdout_console
    from clients.errors import OrderPayError
    from clients.reporting import report_error
    from clients.views import order_json, order_view

    try:
        with _client(args) as client:
            order = client.get_order(args.order_id, args.wait_ms)
    except OrderPayError as err:
        return report_error(err)
    if args.json:
        print_json(order_json(order))
        return 0
    stdout_console().print(order_view(order))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from clients.demo import run_demo
    from clients.errors import OrderPayError
    from clients.reporting import report_error

    target = args.target or os.environ.get("ORDERPAY_GRPC_TARGET") or DEFAULT_TARGET
    token = args.token or os.environ.get("ORDERPAY_TOKEN") or DEV_ADMIN_TOKEN
    try:
        if args.recon:  # issue 12; on a stack of its own (issue 22): it moves the sandbox's clock
            from clients.recon_demo import run_isolated_recon_demo

            return run_isolated_recon_demo(args.user_id, args.plan)
        return run_demo(
            target, token, args.sandbox_url.rstrip("/"), args.user_id, args.plan, args.manual, args.merchant
        )
    except OrderPayError as err:
        return report_error(err)


def _client(args: argparse.Namespace) -> OrderPayClient:
    from clients.client import OrderPayClient

    target = args.target or os.environ.get("ORDERPAY_GRPC_TARGET") or DEFAULT_TARGET
    token = args.token or os.environ.get("ORDERPAY_TOKEN") or DEV_ADMIN_TOKEN
    return OrderPayClient(target, token, default_timeout=args.timeout)
