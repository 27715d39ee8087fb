"""Webhook bodies and the HTTP client that POSTs them (issue 19 item 4).

The body is the proto3 JSON mapping of orderpay.v1.FeedEvent, the same message a Watch stream
carries (int64 fields, `position` among them, are JSON strings in that mapping).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from google.protobuf import json_format

from orderpay.v1 import events_pb2
from server.service.feed_ports import StoredEvent
from server.service.webhook_ports import SendOutcome

USER_AGENT = "orderpay-webhooks/1"
MAX_ANSWER = 64 * 1024


def webhook_body(stored: StoredEvent) -> bytes:
    event = events_pb2.FeedEvent.FromString(stored.payload)
    return json_format.MessageToJson(event, indent=None, ensure_ascii=False).encode()


class HttpxWebhookSender:
    """One pooled client shared by the job's worker threads (httpx.Client is thread-safe).

    Redirects are not followed (a 3xx is a failure): the signed body goes to the registered URL only.
    At most MAX_ANSWER bytes of an answer are read and dropped: enough to reuse the connection for the
    next event (an unread answer closes it), never a receiver making the sender buffer megabytes."""

    def __init__(self, timeout_s: float, connections: int) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"User-Agent": USER_AGENT},
        )

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendOutcome:
        try:
            with self._client.stream("POST", url, content=body, headers=dict(headers)) as response:
                read = 0
                for chunk in response.iter_raw():
                    read += len(chunk)
                    if read > MAX_ANSWER:
                        break  # leaving the block closes the connection instead
                return SendOutcome(response.status_code)
        except httpx.TimeoutException:
            return SendOutcome(None, "timed out")
        except httpx.HTTPError as exc:  # refused, reset, TLS, DNS: the receiver was not reached
            return SendOutcome(None, f"{type(exc).__name__}: {exc}"[:255])

    def close(self) -> None:
        self._client.close()
