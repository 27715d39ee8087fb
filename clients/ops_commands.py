"""`orderpay ops …`: the AdminService verbs for operators (issue 13). Every listing prints a table, or
JSON with `--json`; every action needs `--reason` and prints what it did.

Target and token: flags, else `ORDERPAY_GRPC_TARGET` / `ORDERPAY_TOKEN`, else the dev stack's defaults.
"""

# Handlers import grpc, rich and the client lazily so `orderpay --help` stays fast (see clients/cli.py).
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clients import ops_abnormal, sandbox_trigger

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from clients.admin_client import AdminClient

DEFAULT_TARGET = "127.0.0.1:50051"
DEV_ADMIN_TOKEN = "dev-admin-token"  # noqa: S105 - the public dev token of server/config.py
STATUSES = ("unpaid", "paid", "partially_refunded", "refunded", "closed")
FULFILMENTS = ("pending", "succeeded", "failed", "held")
REFUND_STATUSES = ("processing", "success", "closed", "abnormal")
KINDS = ("fulfilment", "refund_poll")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--target", help=f"gRPC host:port (env ORDERPAY_GRPC_TARGET, else {DEFAULT_TARGET})")
    common.add_argument("--token", help="admin bearer token (env ORDERPAY_TOKEN, else the dev admin token)")
    common.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default %(default)g)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    action = argparse.ArgumentParser(add_help=False, parents=[common])
    action.add_argument("--reason", required=True, help="why (stored in the audit trail)")

    ops = sub.add_parser("ops", help="operations: what needs a human, and acting on it (admin token)")
    verbs = ops.add_subparsers(dest="ops_command", required=True, metavar="VERB")
    _register_reads(verbs, common)
    _register_actions(verbs, action)
    sandbox_trigger.register(sub)  # `orderpay sandbox trigger EVENT`


def _register_reads(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    orders = verbs.add_parser("orders", parents=[common], help="orders across users, newest first")
    orders.add_argument("--status", choices=STATUSES, type=str.lower, help="only orders in this status")
    orders.add_argument(
        "--fulfilment", choices=FULFILMENTS, type=str.lower, help="only orders whose fulfilment is this"
    )
    orders.add_argument("--product", help="only this product id")
    orders.add_argument("--user", help="only this user id")
    orders.add_argument("--account", help="only orders this merchant account took")
    orders.add_argument("--since", type=_time, help="created at or after (ISO 8601, UTC if no offset)")
    orders.add_argument("--until", type=_time, help="created before")
    orders.add_argument("--attention", action="store_true", help="HELD, or FAILED with no refund under way")
    orders.add_argument(
        "--query", help="order_id, out_trade_no (商户订单号) or transaction_id (微信支付单号)"
    )
    orders.add_argument("--page-size", type=int, default=20, help="rows per page (default %(default)s)")
    orders.add_argument("--page-token", default="", help="the next page, as printed under a full page")
    orders.set_defaults(func=_orders)

    show = verbs.add_parser(
        "show", parents=[common], help="one order's story: events, refunds, notifications"
    )
    show.add_argument("order_id", help="the order whose story to print")
    show.set_defaults(func=_show)

    refunds = verbs.add_parser("refunds", parents=[common], help="refunds by status, or the stuck ones")
    refunds.add_argument(
        "--status", choices=REFUND_STATUSES, type=str.lower, help="only refunds in this status"
    )
    refunds.add_argument("--stuck", action="store_true", help="ABNORMAL, or PROCESSING for too long")
    refunds.add_argument("--account", help="only refunds of orders this merchant account took")
    refunds.add_argument("--page-size", type=int, default=50, help="rows (default %(default)s)")
    refunds.set_defaults(func=_refunds)

    notes = verbs.add_parser("notifications", parents=[common], help="stored notifications, newest first")
    notes.add_argument(
        "--status", choices=("RECEIVED", "PROCESSED", "FAILED"), type=str.upper, help="only this status"
    )
    notes.add_argument("--outcome", help="only this outcome, e.g. amount_mismatch")
    notes.add_argument("--failing", action="store_true", help="not processed, or an alarming outcome")
    notes.add_argument("--account", help="only notifications verified as this merchant account's")
    notes.add_argument("--page-size", type=int, default=50, help="rows (default %(default)s)")
    notes.set_defaults(func=_notifications)

    jobs = verbs.add_parser("jobs", parents=[common], help="background work: fulfilment outbox, refund polls")
    jobs.add_argument("--kind", choices=KINDS, help="only this kind of background work")
    jobs.add_argument("--account", help="only the work of orders this merchant account took")
    jobs.add_argument("--page-size", type=int, default=50, help="rows (default %(default)s)")
    jobs.set_defaults(func=_jobs)


def _register_actions(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], action: argparse.ArgumentParser
) -> None:
    resolve = verbs.add_parser("resolve", parents=[action], help="take a HELD order out of HELD")
    resolve.add_argument("order_id", help="the HELD order")
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--refund", dest="resolution", action="store_const", const="refund", help="give the money back"
    )
    how.add_argument(
        "--accept", dest="resolution", action="store_const", const="accept", help="keep it and fulfil"
    )
    resolve.add_argument("--expected-version", type=int, default=0, help="the version you looked at")
    resolve.set_defaults(func=_resolve)

    retry = verbs.add_parser("retry-fulfilment", parents=[action], help="run a FAILED fulfilment again")
    retry.add_argument("order_id", help="the order whose fulfilment FAILED")
    retry.add_argument(
        "--expected-version", type=int, default=0, help="the version you looked at (0 = current)"
    )
    retry.set_defaults(func=_retry_fulfilment)

    replay = verbs.add_parser("replay", parents=[action], help="re-run a stored notification (idempotent)")
    replay.add_argument("notification_id", help="the stored notification (ops notifications)")
    replay.set_defaults(func=_replay)

    ops_abnormal.register(verbs, action)  # `ops resolve-abnormal`: an ABNORMAL refund's way out

    for name, func, text in (
        ("retry-job", _retry_job, "make a job due now"),
        ("revoke-job", _revoke_job, "stop a job"),
    ):
        verb = verbs.add_parser(name, parents=[action], help=text)
        verb.add_argument("kind", choices=KINDS, help="fulfilment or refund_poll")
        verb.add_argument("key", help="order_id (fulfilment) or out_refund_no (refund_poll)")
        verb.set_defaults(func=func)


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- handlers ---------------------------------------------------------------------------------------
def _orders(args: argparse.Namespace) -> int:
    from orderpay.v1 import admin_service_pb2 as pb
    from orderpay.v1 import order_pb2

    request = pb.ListAllOrdersRequest(
        page_size=args.page_size,
        page_token=args.page_token,
        product_id=args.product or "",
        user_id=args.user or "",
        needs_attention=args.attention,
        query=args.query or "",
        account=args.account or "",
    )
    if args.status:
        request.status = order_pb2.OrderStatus.Value(f"ORDER_STATUS_{args.status.upper()}")
    if args.fulfilment:
        request.fulfilment = order_pb2.Fulfilment.Value(f"FULFILMENT_{args.fulfilment.upper()}")
    if args.since:
        request.created_from.FromDatetime(args.since)
    if args.until:
        request.created_to.FromDatetime(args.until)

    def show(page: Any) -> None:
        from clients.console import stdout_console
        from clients.views import orders_view

        console = stdout_console()
        console.print(orders_view(page.orders, console))
        if page.next_page_token:
            print(f"next page: --page-token {page.next_page_token}")

    return _run(args, lambda c: c.list_all_orders(request), show)


def _show(args: argparse.Namespace) -> int:
    return _run(args, lambda c: c.order_story(args.order_id), _print_story)


def _resolve(args: argparse.Namespace) -> int:
    return _run(
        args,
        lambda c: c.resolve_held(args.order_id, args.resolution, args.reason, args.expected_version),
        _print_result,
    )


def _retry_fulfilment(args: argparse.Namespace) -> int:
    return _run(
        args, lambda c: c.retry_fulfilment(args.order_id, args.reason, args.expected_version), _print_result
    )


def _refunds(args: argparse.Namespace) -> int:
    from orderpay.v1 import admin_service_pb2 as pb
    from orderpay.v1 import pay_service_pb2

    request = pb.ListRefundsRequest(stuck=args.stuck, page_size=args.page_size, account=args.account or "")
    if args.status:
        request.status = pay_service_pb2.RefundStatus.Value(f"REFUND_STATUS_{args.status.upper()}")
    return _run(
        args, lambda c: c.list_refunds(request), lambda r: _print_rows("refunds", r.refunds, REFUND_COLUMNS)
    )


def _notifications(args: argparse.Namespace) -> int:
    from orderpay.v1 import admin_service_pb2 as pb

    request = pb.ListNotificationsRequest(
        status=args.status or "",
        outcome=args.outcome or "",
        failing=args.failing,
        page_size=args.page_size,
        account=args.account or "",
    )
    return _run(
        args,
        lambda c: c.list_notifications(request),
        lambda r: _print_rows("notifications", r.notifications, NOTE_COLUMNS),
    )


def _replay(args: argparse.Namespace) -> int:
    return _run(args, lambda c: c.replay_notification(args.notification_id, args.reason), _print_result)


def _jobs(args: argparse.Namespace) -> int:
    def show(response: Any) -> None:
        _print_rows("fulfilment outbox", response.fulfilments, JOB_COLUMNS)
        _print_rows("refund polls", response.refund_polls, REFUND_COLUMNS)

    return _run(args, lambda c: c.list_jobs(args.kind, args.page_size, args.account or ""), show)


def _retry_job(args: argparse.Namespace) -> int:
    return _run(args, lambda c: c.retry_job(args.kind, args.key, args.reason), _print_result)


def _revoke_job(args: argparse.Namespace) -> int:
    return _run(args, lambda c: c.revoke_job(args.kind, args.key, args.reason), _print_result)


# --- plumbing ---------------------------------------------------------------------------------------
def _run(args: argparse.Namespace, call: Callable[[AdminClient], Any], render: Callable[[Any], None]) -> int:
    from clients.admin_client import AdminClient
    from clients.errors import OrderPayError
    from clients.reporting import report_error

    target = args.target or os.environ.get("ORDERPAY_GRPC_TARGET") or DEFAULT_TARGET
    token = args.token or os.environ.get("ORDERPAY_TOKEN") or DEV_ADMIN_TOKEN
    try:
        with AdminClient(target, token, timeout=args.timeout) as client:
            response = call(client)
    except OrderPayError as err:
        return report_error(err)
    if args.json:
        print(json.dumps(_to_dict(response), ensure_ascii=False, indent=2))
    else:
        render(response)
    return 0


def _to_dict(message: Message) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(message, preserving_proto_field_name=True)


def _print_table(table: Any) -> None:
    """Fits the terminal; complete, never cut, when piped (clients.console)."""
    from clients.console import stdout_console

    stdout_console().print(table)


REFUND_COLUMNS = ("out_refund_no", "order_id", "amount", "status", "reason", "created_at")
NOTE_COLUMNS = (
    "notification_id",
    "event_type",
    "status",
    "outcome",
    "attempts",
    "received_at",
    "out_trade_no",
)
JOB_COLUMNS = ("order_id", "kind", "status", "attempts", "next_attempt_at", "last_error")
EVENT_COLUMNS = ("time", "field", "from_value", "to_value", "cause", "actor", "request_id")


def _print_rows(title: str, rows: Any, columns: tuple[str, ...]) -> None:
    from rich.table import Table

    table = Table(title=f"{title} ({len(rows)})")
    for column in columns:
        table.add_column(column)
    for row in rows:
        values = _to_dict(row)
        table.add_row(*(_money(values.get(c)) if c in MONEY else _cell(values.get(c, "")) for c in columns))
    _print_table(table)


MONEY = frozenset({"amount"})  # fen on the wire and in --json; yuan in the table a person reads


def _money(value: object) -> str:
    from clients.views import yuan

    return yuan(int(str(value))) if value not in (None, "") else "-"


def _cell(value: object) -> str:
    from clients.views import printable

    if isinstance(value, str) and value.startswith("REFUND_STATUS_"):
        return value.removeprefix("REFUND_STATUS_")
    return printable(str(value))


def _print_story(story: Any) -> None:
    from clients.views import order_view

    _print_table(order_view(story.order))
    _print_rows("events", story.events, EVENT_COLUMNS)
    _print_rows("refunds", story.refunds, REFUND_COLUMNS)
    _print_rows("notifications", story.notifications, NOTE_COLUMNS)
    if story.HasField("fulfilment"):
        _print_rows("fulfilment", [story.fulfilment], JOB_COLUMNS)
    if not story.provider_calls_recorded:
        print("provider calls are not stored; see the log lines with this order_id", file=sys.stderr)


def _print_result(result: Any) -> None:
    from clients.views import printable

    print(printable(f"{result.action}: {result.outcome} — {result.message}"))
    if result.HasField("order"):
        from clients.views import enum_label

        order = result.order
        status, fulfilment = enum_label(order, "status"), enum_label(order, "fulfilment")
        print(f"order {order.order_id}: {status} / {fulfilment}, version {order.version}")
    if result.HasField("refund"):
        print(f"refund {result.refund.out_refund_no}: {_cell(_to_dict(result.refund).get('status', ''))}")
