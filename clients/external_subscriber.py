"""The business's own system fulfilling EXTERNAL orders from the event feed (docs/event-feed.md).

`python -m clients.external_subscriber [NAME]`, env ORDERPAY_GRPC_TARGET, ORDERPAY_TOKEN. Resuming after
its last acknowledgement, it may see an event twice; answering twice is harmless."""

from __future__ import annotations

import os
import sys
import time

import grpc

from orderpay.v1 import events_pb2 as ev
from orderpay.v1 import events_pb2_grpc, order_pb2

WANTED = [ev.EVENT_TYPE_FULFILMENT_REQUESTED, ev.EVENT_TYPE_GRANT_REVOKED]


def fulfil(order: order_pb2.Order) -> str:
    """The business's own work (here: issue a gift code); what it returns goes into the audit trail."""
    return f"gift code {order.order_id[-8:].upper()}"


def serve(feed: events_pb2_grpc.EventServiceStub, name: str, auth: tuple[tuple[str, str], ...]) -> None:
    feed.RegisterSubscriber(ev.RegisterSubscriberRequest(subscriber=name), metadata=auth, timeout=10)
    for response in feed.Watch(ev.WatchRequest(subscriber=name, types=WANTED), metadata=auth):
        event = response.event
        if event.type == ev.EVENT_TYPE_GRANT_REVOKED:
            print(f"revoked {event.order_id}: take the gift card back", flush=True)
        elif event.order.kind == order_pb2.PRODUCT_KIND_EXTERNAL:
            answer = ev.ConfirmFulfilmentRequest(
                order_id=event.order_id, result=fulfil(event.order), account=event.account
            )
            try:
                feed.ConfirmFulfilment(answer, metadata=auth, timeout=10)
                print(f"fulfilled {event.order_id}", flush=True)
            except grpc.RpcError as err:  # a re-delivery, or too late: orderpay says so, nothing changed
                if err.code() is not grpc.StatusCode.FAILED_PRECONDITION:
                    raise
        feed.Ack(ev.AckRequest(subscriber=name, position=event.position), metadata=auth, timeout=10)


def main() -> None:
    target = os.environ.get("ORDERPAY_GRPC_TARGET", "127.0.0.1:50051")
    auth = (("authorization", f"Bearer {os.environ.get('ORDERPAY_TOKEN', 'dev-feed-token')}"),)
    name = sys.argv[1] if sys.argv[1:] else "gift-desk"
    while True:  # the server restarts or fails over: resume after the last acknowledgement
        try:
            with grpc.insecure_channel(target) as channel:
                serve(events_pb2_grpc.EventServiceStub(channel), name, auth)
        except grpc.RpcError as err:
            print(f"feed lost ({err.code().name}); resuming", flush=True)
            time.sleep(1)


if __name__ == "__main__":
    main()
