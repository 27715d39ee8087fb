"""A subscriber that survives server crashes: Watch, ack as it goes, reconnect on any failure.

It records every delivery (duplicates included) so a test can check the promise: after dropping
positions already seen, the positions run on without a gap, in order.
"""

from __future__ import annotations

import threading

import grpc

from orderpay.v1 import events_pb2, events_pb2_grpc


class FeedWatcher:
    def __init__(self, targets: list[str], token: str, name: str, ack_every: int = 7) -> None:
        self._targets, self._metadata, self._name = targets, (("authorization", f"Bearer {token}"),), name
        self._ack_every = ack_every
        self.delivered: list[int] = []
        self.reconnects = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._call: grpc.Future | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
        self._thread.join(20)

    def highest(self) -> int:
        return max(self.delivered, default=0)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            target = self._targets[attempt % len(self._targets)]
            attempt += 1
            try:
                self._watch(target)
            except grpc.RpcError:
                self.reconnects += 1
                self._stop.wait(0.2)  # the server is down or restarting: try again shortly

    def _watch(self, target: str) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = events_pb2_grpc.EventServiceStub(channel)
            stub.RegisterSubscriber(
                events_pb2.RegisterSubscriberRequest(subscriber=self._name),
                metadata=self._metadata,
                timeout=5,
            )
            call = stub.Watch(events_pb2.WatchRequest(subscriber=self._name), metadata=self._metadata)
            with self._lock:
                self._call = call
            if self._stop.is_set():
                call.cancel()
            unacked = 0
            for response in call:
                self.delivered.append(response.event.position)
                unacked += 1
                if unacked >= self._ack_every:
                    ack = events_pb2.AckRequest(subscriber=self._name, position=response.event.position)
                    stub.Ack(ack, metadata=self._metadata, timeout=5)
                    unacked = 0


def check_exactly_once_in_order(delivered: list[int], start: int, head: int) -> None:
    """Drop re-deliveries (positions at or below the highest seen); what is left must be start+1..head."""
    highest, unique = start, []
    for position in delivered:
        if position <= highest:
            continue  # a re-delivery after a reconnect: at-least-once
        assert position == highest + 1, f"gap: {highest} then {position}"
        unique.append(position)
        highest = position
    assert unique == list(range(start + 1, head + 1))
