"""`orderpay events tail|register`: the order event feed from a terminal.

`tail` prints events as they commit (from the head, or after `--from POSITION`); with `--subscriber`
it resumes after that subscriber's acknowledgement and acknowledges what it printed. Target and token
come from flags, else `ORDERPAY_GRPC_TARGET` / `ORDERPAY_TOKEN`, else the dev stack's feed token.
"""

# ruff: noqa: PLC0415 - handlers import grpc lazily so `orderpay --help` stays fast

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from clients import webhook_commands

DEFAULT_TARGET = "127.0.0.1:50051"
DEV_FEED_TOKEN = "dev-feed-token"  # noqa: S105 - the public dev token of server/config.py
TYPES = [  # orderpay.v1.EventType without its prefix (server.domain.feed.FeedType)
    "ORDER_CREATED",
    "ORDER_PAID",
    "ORDER_HELD",
    "ORDER_CLOSED",
    "FULFILMENT_REQUESTED",
    "FULFILMENT_SUCCEEDED",
    "FULFILMENT_FAILED",
    "REFUND_REQUESTED",
    "REFUND_SUCCEEDED",
    "REFUND_ABNORMAL",
    "REFUND_CLOSED",
    "RECON_EXCEPTION_OPENED",
    "RECON_EXCEPTION_RESOLVED",
    "GRANT_REVOKED",
]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--target", help=f"gRPC host:port (env ORDERPAY_GRPC_TARGET, else {DEFAULT_TARGET})"
    )
    connection.add_argument("--token", help="bearer token, role feed or admin (env ORDERPAY_TOKEN, else dev)")
    events = sub.add_parser("events", help="the order event feed (EventService)")
    actions = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    tail = actions.add_parser("tail", parents=[connection], help="print events as they commit")
    tail.add_argument(
        "--from", dest="from_position", type=int, help="after this position (0: all kept; default: new only)"
    )
    tail.add_argument(
        "--type",
        dest="types",
        action="append",
        choices=TYPES,
        type=str.upper,
        default=[],
        metavar="TYPE",
        help="only this type, repeatable (default: every type): " + ", ".join(TYPES),
    )
    tail.add_argument("--account", default="", help="only this merchant account (default: every account)")
    tail.add_argument(
        "--subscriber", default="", help="resume after, and acknowledge as, this subscriber (default: none)"
    )
    tail.add_argument("--limit", type=int, default=0, help="stop after this many events (default 0: never)")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.set_defaults(func=_tail)
    reg = actions.add_parser("register", parents=[connection], help="register a named subscriber")
    reg.add_argument("subscriber", metavar="NAME", help="1-64 letters, digits, '.', '_', '-'")
    reg.add_argument(
        "--webhook-url",
        help="also POST every event, signed, to this URL ('' removes it); a new one prints its secret once",
    )
    reg.set_defaults(func=_register)
    webhook_commands.add(actions, connection)  # issue 19 item 4: subscribers, webhook enable|disable|rotate


def _stub(args: argparse.Namespace) -> tuple[Any, Any, tuple[tuple[str, str], ...]]:
    import grpc

    from orderpay.v1 import events_pb2_grpc

    target = args.target or os.environ.get("ORDERPAY_GRPC_TARGET") or DEFAULT_TARGET
    token = args.token or os.environ.get("ORDERPAY_TOKEN") or DEV_FEED_TOKEN
    channel = grpc.insecure_channel(target)
    return channel, events_pb2_grpc.EventServiceStub(channel), (("authorization", f"Bearer {token}"),)


def _register(args: argparse.Namespace) -> int:
    import grpc

    from clients.errors import from_rpc_error
    from clients.reporting import report_error
    from orderpay.v1 import events_pb2

    channel, stub, metadata = _stub(args)
    with channel:
        try:
            request = events_pb2.RegisterSubscriberRequest(subscriber=args.subscriber)
            if args.webhook_url is not None:
                request.webhook_url = args.webhook_url
            answer = stub.RegisterSubscriber(request, metadata=metadata, timeout=10)
        except grpc.RpcError as err:
            return report_error(from_rpc_error(err))
    print(f"{answer.subscriber}: acknowledged up to {answer.acked_position}, head {answer.head_position}")
    if answer.HasField("webhook"):
        print(f"webhook {answer.webhook.url}")
    if answer.webhook.secret:
        print(f"webhook secret (shown once, keep it): {answer.webhook.secret}")
    return 0


def _tail(args: argparse.Namespace) -> int:
    import grpc

    from clients.errors import from_rpc_error
    from clients.reporting import report_error
    from orderpay.v1 import events_pb2

    channel, stub, metadata = _stub(args)
    request = events_pb2.WatchRequest(
        subscriber=args.subscriber,
        from_position=args.from_position,
        types=[events_pb2.EventType.Value(f"EVENT_TYPE_{t}") for t in args.types],
        account=args.account,
    )
    printed = 0
    with channel:
        try:
            for response in stub.Watch(request, metadata=metadata):
                print(_line(response.event, args.json), flush=True)
                if args.subscriber:
                    ack = events_pb2.AckRequest(subscriber=args.subscriber, position=response.event.position)
                    stub.Ack(ack, metadata=metadata, timeout=10)
                printed += 1
                if args.limit and printed >= args.limit:
                    return 0
        except grpc.RpcError as err:
            return report_error(from_rpc_error(err))
        except KeyboardInterrupt:
            return 0
    return 0


def _line(event: Any, as_json: bool) -> str:
    from google.protobuf import json_format

    from clients.views import yuan
    from orderpay.v1 import events_pb2

    if as_json:
        return json.dumps(json_format.MessageToDict(event), ensure_ascii=False)
    kind = events_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_")
    at = event.occurred_at.ToDatetime().strftime("%H:%M:%S")
    what = event.order
    detail = f"{_enum(what, 'status')} {_enum(what, 'fulfilment')}"
    if event.HasField("refund"):
        detail = f"refund {event.refund.out_refund_no} {yuan(event.refund.amount)}"
    elif event.attempt:
        detail += f" attempt {event.attempt}"
    return f"{event.position:>8}  {at}  {kind:<24} {event.account:<10} {event.order_id}  {detail}"


def _enum(message: Any, field: str) -> str:
    descriptor = message.DESCRIPTOR.fields_by_name[field].enum_type
    return str(descriptor.values_by_number[getattr(message, field)].name.split("_", 2)[-1])
