"""`orderpay ops resolve-abnormal OUT_REFUND_NO`: the operator's way out of an ABNORMAL refund (退款异常:
WeChat Pay could not pay the money back to the payer's card). It sends the money another way
(发起异常退款): to the payer's bank card, or to the merchant's account to pay the customer by hand; the
refund is PROCESSING again and settles like any other."""

from __future__ import annotations

import argparse
import json
import os

DEFAULT_TARGET = "127.0.0.1:50051"
DEV_ADMIN_TOKEN = "dev-admin-token"  # noqa: S105 - the public dev token of server/config.py


def register(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], action: argparse.ArgumentParser
) -> None:
    verb = verbs.add_parser(
        "resolve-abnormal",
        parents=[action],
        help="send an ABNORMAL refund's money another way (发起异常退款)",
        description=__doc__,
    )
    verb.add_argument("out_refund_no", help="the ABNORMAL refund (ops refunds --stuck lists them)")
    route = verb.add_mutually_exclusive_group(required=True)
    route.add_argument(
        "--to-merchant",
        dest="route",
        action="store_const",
        const="MERCHANT_BANK_CARD",
        help="to the merchant's bank account, to pay the customer by hand",
    )
    route.add_argument(
        "--to-card",
        dest="route",
        action="store_const",
        const="USER_BANK_CARD",
        help="to the payer's (new) bank card: needs --bank-type, --bank-account and --real-name",
    )
    verb.add_argument("--bank-type", default="", help="e.g. ICBC_DEBIT (with --to-card)")
    verb.add_argument("--bank-account", default="", help="card number (sent encrypted; with --to-card)")
    verb.add_argument("--real-name", default="", help="the card holder's name (sent encrypted)")
    verb.set_defaults(func=_resolve_abnormal)


def _resolve_abnormal(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict  # noqa: PLC0415 - keep `--help` fast

    from clients.client import OrderPayClient  # noqa: PLC0415
    from clients.errors import OrderPayError  # noqa: PLC0415
    from clients.reporting import report_error  # noqa: PLC0415

    if args.route == "USER_BANK_CARD" and not (args.bank_type and args.bank_account and args.real_name):
        print("orderpay: --to-card needs --bank-type, --bank-account and --real-name")
        return 2
    target = args.target or os.environ.get("ORDERPAY_GRPC_TARGET") or DEFAULT_TARGET
    token = args.token or os.environ.get("ORDERPAY_TOKEN") or DEV_ADMIN_TOKEN
    try:
        with OrderPayClient(target, token, default_timeout=args.timeout) as client:
            refund = client.resolve_abnormal_refund(
                args.out_refund_no, args.route, args.reason, args.bank_type, args.bank_account, args.real_name
            )
    except OrderPayError as err:
        return report_error(err)
    shown = MessageToDict(refund, preserving_proto_field_name=True)
    if args.json:
        print(json.dumps(shown, ensure_ascii=False, indent=2))
    else:
        print(f"resolve_abnormal_refund: done — refund {refund.out_refund_no} is {shown.get('status')} again")
    return 0
