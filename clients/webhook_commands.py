"""`orderpay events subscribers` and `orderpay events webhook enable|disable|rotate NAME` (issue 19
item 4): the subscribers with their lag and webhook, and a webhook switched on, off, or given a new
secret. Same target and token rules as `orderpay events tail`."""

# ruff: noqa: PLC0415 - handlers import grpc lazily so `orderpay --help` stays fast

from __future__ import annotations

import argparse
import json
from typing import Any


def add(actions: Any, connection: argparse.ArgumentParser) -> None:
    listing = actions.add_parser(
        "subscribers", parents=[connection], help="subscribers: lag, webhook URL, state, last success/error"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per subscriber")
    listing.set_defaults(func=_subscribers)
    hook = actions.add_parser(
        "webhook", parents=[connection], help="a subscriber's webhook: enable, disable, rotate"
    )
    hook.add_argument(
        "verb", choices=["enable", "disable", "rotate"], help="enable: resume from the acknowledged position"
    )
    hook.add_argument("subscriber", metavar="NAME", help="the subscriber whose webhook this is")
    hook.set_defaults(func=_webhook)


def _call(args: argparse.Namespace, method: str, request: Any) -> Any:
    import grpc

    from clients.errors import from_rpc_error
    from clients.events_commands import _stub
    from clients.reporting import report_error

    channel, stub, metadata = _stub(args)
    with channel:
        try:
            return getattr(stub, method)(request, metadata=metadata, timeout=10)
        except grpc.RpcError as err:
            return report_error(from_rpc_error(err))


def _subscribers(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from orderpay.v1 import events_pb2

    answer = _call(args, "ListSubscribers", events_pb2.ListSubscribersRequest())
    if isinstance(answer, int):
        return answer
    if args.json:
        for s in answer.subscribers:
            print(json.dumps(json_format.MessageToDict(s), ensure_ascii=False))
        return 0
    print(f"head {answer.head_position}")
    print(_ROW.format("SUBSCRIBER", "ACKED", "LAG", "STATE", "FAILS", "LAST SUCCESS", "URL / LAST ERROR"))
    for s in answer.subscribers:
        hook, has = s.webhook, s.HasField("webhook")
        state = events_pb2.WebhookState.Name(hook.state).removeprefix("WEBHOOK_STATE_") if has else "-"
        success = _when(hook, "last_success_at") if has else ""
        fails = hook.consecutive_failures if has else ""
        print(_ROW.format(s.subscriber, s.acked_position, s.lag, state, fails, success, hook.url))
        if hook.last_error:
            print(_ROW.format("", "", "", "", "", _when(hook, "last_error_at"), hook.last_error))
    return 0


_ROW = "{:<24} {:>8} {:>6}  {:<8} {:>5}  {:<19}  {}"


def _when(message: Any, field: str) -> str:
    return (
        message.__getattribute__(field).ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        if message.HasField(field)
        else "never"
    )


def _webhook(args: argparse.Namespace) -> int:
    from orderpay.v1 import events_pb2

    if args.verb == "rotate":
        answer = _call(
            args, "RotateWebhookSecret", events_pb2.RotateWebhookSecretRequest(subscriber=args.subscriber)
        )
        if isinstance(answer, int):
            return answer
        until = answer.webhook.previous_secret_expires_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")
        print(f"new secret (shown once, keep it): {answer.webhook.secret}")
        print(f"the previous secret signs too until {until}")
        return 0
    request = events_pb2.SetWebhookEnabledRequest(subscriber=args.subscriber, enabled=args.verb == "enable")
    answer = _call(args, "SetWebhookEnabled", request)
    if isinstance(answer, int):
        return answer
    state = events_pb2.WebhookState.Name(answer.subscriber.webhook.state).removeprefix("WEBHOOK_STATE_")
    print(f"{args.subscriber}: webhook {state}, lag {answer.subscriber.lag}")
    return 0
