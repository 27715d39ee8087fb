"""A feed entry as the public message it is stored as (orderpay.v1.FeedEvent).

Stored serialized, at append time: a subscriber sees the order as it was when the event committed,
not as it is when it reads. The shapes are the gRPC API's own converters (server.rpc.mapping).
"""

from __future__ import annotations

from orderpay.v1 import events_pb2
from server.rpc.mapping import order_to_pb, refund_to_pb, timestamp
from server.rpc.recon_servicer import exception_to_pb
from server.service.feed_ports import FeedEntry


def encode_entry(entry: FeedEntry, position: int) -> bytes:
    event = events_pb2.FeedEvent(
        position=position,
        type=events_pb2.EventType.Value(f"EVENT_TYPE_{entry.type.value}"),
        account=entry.account,
        occurred_at=timestamp(entry.occurred_at),
        order_id=entry.order_id,
        attempt=entry.attempt,
    )
    if entry.refund is not None:
        event.refund.CopyFrom(refund_to_pb(entry.refund))
    elif entry.recon is not None:
        event.recon_exception.CopyFrom(exception_to_pb(entry.recon))
    elif entry.order is not None:
        event.order.CopyFrom(order_to_pb(entry.order))
    return event.SerializeToString()
